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
