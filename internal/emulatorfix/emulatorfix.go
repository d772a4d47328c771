// Package emulatorfix narrowly corrects what the embedded kumo emulator
// answers differently from AWS, in one place, so that the SDK's behaviour
// against it matches its behaviour against AWS. Both the test harness and
// the local runtime put it in front of kumo.
package emulatorfix

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
)

// Proxy returns a reverse proxy to the emulator at target that applies
// every fix below to its responses.
func Proxy(target *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			// As a Director-based single-host proxy does: the emulator sees
			// the Host the client called (queue URLs, virtual hosts).
			r.Out.Host = r.In.Host
			ForwardBody(r.Out)
		},
		ModifyResponse: AddDynamoDBChecksum,
		// Runtime API long polls and SQS long polls must stream promptly.
		FlushInterval: -1,
	}
}

// AddDynamoDBChecksum adds the X-Amz-Crc32 header that DynamoDB sends and
// kumo does not: without it the SDK checks the body against 0 and logs a
// "response did not match expected checksum" warning for every call.
func AddDynamoDBChecksum(resp *http.Response) error {
	if !strings.HasPrefix(resp.Request.Header.Get("X-Amz-Target"), "DynamoDB_") ||
		resp.Header.Get("X-Amz-Crc32") != "" || resp.Header.Get("Content-Encoding") != "" {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read DynamoDB response: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.Header.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
	return nil
}

// ForwardBody gives a proxy's outbound request a body that ends after the
// inbound request's Content-Length bytes without reading the inbound body
// again. net/http's write loop reads a body once more after its declared
// length, to check that nothing is left; the server closes the inbound body
// when the proxy's handler returns, which may come first, and the write
// loop then fails on "http: invalid Read on closed Body" and closes the
// connection to the emulator: the answer was relayed, but every such race
// costs a pooled connection. Call it from a proxy's Rewrite.
func ForwardBody(out *http.Request) {
	if out.Body == nil || out.Body == http.NoBody || out.ContentLength <= 0 {
		return
	}
	out.Body = &lengthBody{rc: out.Body, left: out.ContentLength}
}

// lengthBody reads io.EOF once left bytes are read. Only the write loop
// reads it; Close may come from the server's goroutine.
type lengthBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left <= 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return b.rc.Close() }
