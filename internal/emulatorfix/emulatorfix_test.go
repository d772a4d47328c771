package emulatorfix

import (
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestProxyAddsDynamoDBChecksum(t *testing.T) {
	const body = `{"Item":{"pk":{"S":"x"}}}`
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	front := httptest.NewServer(Proxy(u))
	defer front.Close()

	tests := []struct {
		name   string
		target string
		want   string
	}{
		{"DynamoDB call gets the CRC32 of its body", "DynamoDB_20120810.GetItem", strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(body))), 10)},
		{"other services are left alone", "AmazonSQS.SendMessage", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, front.URL, strings.NewReader("{}"))
			req.Header.Set("X-Amz-Target", tc.target)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if string(got) != body {
				t.Errorf("body = %q, want %q", got, body)
			}
			if h := resp.Header.Get("X-Amz-Crc32"); h != tc.want {
				t.Errorf("X-Amz-Crc32 = %q, want %q", h, tc.want)
			}
		})
	}
}

// closedAfterClose is a server request body: reading it after Close fails.
type closedAfterClose struct {
	r      io.Reader
	closed bool
}

func (b *closedAfterClose) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.r.Read(p)
}

func (b *closedAfterClose) Close() error { b.closed = true; return nil }

// The transport reads a body once more after its Content-Length; by then
// the server may have closed the inbound body. The forwarded body ends
// without reading it.
func TestForwardBodyEndsAtContentLength(t *testing.T) {
	in := &closedAfterClose{r: strings.NewReader(`{"QueueUrl":"q"}`)}
	out := httptest.NewRequest(http.MethodPost, "/", nil)
	out.Body, out.ContentLength = in, 16
	ForwardBody(out)
	got, err := io.ReadAll(io.LimitReader(out.Body, out.ContentLength))
	if err != nil || string(got) != `{"QueueUrl":"q"}` {
		t.Fatalf("read %q, %v; want the whole body", got, err)
	}
	_ = in.Close()
	if n, err := out.Body.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Errorf("Read after the body's length = %d, %v; want 0, EOF", n, err)
	}
	if err := out.Body.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

func TestProxyForwardsRequestBody(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(w, r.Body)
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	front := httptest.NewServer(Proxy(u))
	defer front.Close()
	const body = `{"QueueUrl":"http://127.0.0.1/000000000000/q","MaxNumberOfMessages":10}`
	resp, err := http.Post(front.URL, "application/x-amz-json-1.0", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got, _ := io.ReadAll(resp.Body); string(got) != body {
		t.Errorf("upstream read %q, want %q", got, body)
	}
}
