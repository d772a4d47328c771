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
	p := httputil.NewSingleHostReverseProxy(target)
	p.ModifyResponse = AddDynamoDBChecksum
	// Runtime API long polls and SQS long polls must stream promptly.
	p.FlushInterval = -1
	return p
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
