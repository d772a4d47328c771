package awsconfig

import (
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// HTTPClient is the SDK's default HTTP client (opts adjust its transport,
// for instance a larger connection pool) with the request-body fix that
// Load applies to every client. A program that gives an SDK client an HTTP
// client of its own should build it here.
func HTTPClient(opts ...func(*http.Transport)) aws.HTTPClient {
	return bodyOwner{next: awshttp.NewBuildableClient().WithTransportOptions(append([]func(*http.Transport){sharedPool}, opts...)...)}
}

// sharedPool sizes the idle pool for a transport that every service client
// of a configuration shares. The SDK gives each service client a copy of a
// *BuildableClient, with a pool of its own (10 idle connections per host);
// any other client, such as bodyOwner, it uses as it is. Against an
// emulator every service is one host, so the shared pool keeps as many
// idle connections per host as it keeps in all.
func sharedPool(t *http.Transport) {
	t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, t.MaxIdleConns)
}

// bodyOwner gives net/http a request body that the SDK closing it early
// cannot turn into a broken connection.
//
// The SDK (smithy-go's ClientHandler) closes a request's body as soon as
// Client.Do returns, that is when the response headers have arrived. The
// transport's write loop may not be done with that body yet: after sending
// Content-Length bytes it reads the body once more to check that nothing is
// left over. The SDK's body wrapper exposes WriteTo, which returns io.EOF
// as an error once the body is closed, and the write loop takes any error
// as a failed request write and closes the connection, under the caller
// that is now reading the response body. When the rest of the response has
// not arrived yet (headers and body in separate segments, a slow machine)
// that read fails with "use of closed network connection"; the SDK counts
// this as a retryable connection error and sends the request again, though
// the service executed it: a SendMessageBatch enqueues its messages twice,
// a ReceiveMessage's messages stay in flight, unseen, for their visibility
// timeout, and a DynamoDB body read short fails its CRC32 check.
//
// Hiding WriteTo makes the write loop's final check a plain Read, which
// after the SDK's Close reads io.EOF: the end of a body already sent. A
// body closed before it was sent in full still fails the write, as it must.
type bodyOwner struct{ next aws.HTTPClient }

func (c bodyOwner) Do(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return c.next.Do(r)
	}
	out := *r
	out.Body = readCloser{r.Body}
	return c.next.Do(&out)
}

// readCloser is an io.ReadCloser and nothing else.
type readCloser struct{ rc io.ReadCloser }

func (b readCloser) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b readCloser) Close() error               { return b.rc.Close() }

// ownBodies wraps c, once.
func ownBodies(c aws.HTTPClient) aws.HTTPClient {
	switch c := c.(type) {
	case bodyOwner:
		return c
	case nil:
		return bodyOwner{next: awshttp.NewBuildableClient().WithTransportOptions(sharedPool)}
	case *awshttp.BuildableClient:
		return bodyOwner{next: c.WithTransportOptions(sharedPool)}
	default:
		return bodyOwner{next: c}
	}
}
