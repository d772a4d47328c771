package awsconfig

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"
)

// slowWriteConn returns from every write of a request body late, after the
// bytes are on their way: the service has the whole request and answers
// while the transport's write loop is still inside that write.
type slowWriteConn struct{ net.Conn }

func (c slowWriteConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if !bytes.HasPrefix(p, []byte("POST ")) {
		time.Sleep(150 * time.Millisecond)
	}
	return n, err
}

// recorder keeps the SDK's log lines.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) Logf(c logging.Classification, format string, v ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf("%s "+format, append([]any{c}, v...)...))
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// lateBody is a service that answers every request with answer, sending
// the body 300ms after the headers, and counts the requests.
func lateBody(t *testing.T, header http.Header, answer string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(answer)))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

// slowConfig is a configuration for srv whose request body writes return
// late (slowWriteConn) and whose SDK log lines go to logs.
func slowConfig(srv *httptest.Server, logs *recorder) aws.Config {
	slow := func(tr *http.Transport) {
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return slowWriteConn{c}, nil
		}
	}
	return aws.Config{
		Region:       LocalRegion,
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:   HTTPClient(slow),
		Logger:       logs,
	}
}

// A response whose body comes after its headers, to a request the transport
// is still writing when the headers arrive, is read whole, and the request
// is sent once: the SDK closing the request body must not close the
// connection under the response (which it would then retry, executing a
// SendMessageBatch or a ReceiveMessage twice).
func TestLateResponseBodyRequestSentOnce(t *testing.T) {
	const queueURL = "http://127.0.0.1/000000000000/q"
	srv, requests := lateBody(t, http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		`{"QueueUrl":"`+queueURL+`"}`)
	logs := &recorder{}
	client := sqs.NewFromConfig(slowConfig(srv, logs))
	out, err := client.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String("q")})
	if err != nil {
		t.Errorf("GetQueueUrl: %v", err)
	} else if got := aws.ToString(out.QueueUrl); got != queueURL {
		t.Errorf("GetQueueUrl = %q, want %q", got, queueURL)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the service received the request %d times, want 1", n)
	}
	if l := logs.all(); len(l) > 0 {
		t.Errorf("SDK logged %q, want nothing", l)
	}
}

// The same for DynamoDB, whose client checks the body's CRC32 when it
// closes it: a body cut short failed that check ("response did not match
// expected checksum") though the service had sent it whole.
func TestLateResponseBodyChecksumMatches(t *testing.T) {
	const answer = `{"Item":{"pk":{"S":"x"}}}`
	srv, requests := lateBody(t, http.Header{
		"Content-Type": {"application/x-amz-json-1.0"},
		"X-Amz-Crc32":  {fmt.Sprint(crc32.ChecksumIEEE([]byte(answer)))},
	}, answer)
	logs := &recorder{}
	client := dynamodb.NewFromConfig(slowConfig(srv, logs))
	out, err := client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String("t"),
		Key:       map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "x"}},
	})
	if err != nil {
		t.Errorf("GetItem: %v", err)
	} else if len(out.Item) != 1 {
		t.Errorf("GetItem item = %v, want pk only", out.Item)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the service received the request %d times, want 1", n)
	}
	if l := logs.all(); len(l) > 0 {
		t.Errorf("SDK logged %q, want nothing", l)
	}
}

func TestLoadOwnsRequestBodies(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	cfg, err := Load(context.Background(), Options{Endpoint: "http://127.0.0.1:1", StaticCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	own, ok := cfg.HTTPClient.(bodyOwner)
	if !ok {
		t.Fatalf("HTTPClient = %T, want the body-owning client", cfg.HTTPClient)
	}
	// Every service client shares this transport: its pool is sized for all.
	if bc, ok := own.next.(*awshttp.BuildableClient); !ok {
		t.Errorf("underlying client = %T, want the SDK's buildable client", own.next)
	} else if tr := bc.GetTransport(); tr.MaxIdleConnsPerHost < awshttp.DefaultHTTPTransportMaxIdleConns {
		t.Errorf("MaxIdleConnsPerHost = %d, want at least %d", tr.MaxIdleConnsPerHost, awshttp.DefaultHTTPTransportMaxIdleConns)
	}
	if again := ownBodies(cfg.HTTPClient); again != cfg.HTTPClient {
		t.Errorf("ownBodies wrapped its own client again")
	}
}
