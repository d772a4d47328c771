package localrun

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// Front is the HTTP API's local address: a loopback URL that anyone can
// call (curl, the ServiceNow simulator, Go, Node), forwarding to the
// emulator with the virtual-host name that selects the API there,
// "<apiId>.execute-api.localhost", which resolvers here do not know.
type Front struct {
	// URL is the API's base URL, e.g. http://127.0.0.1:8080.
	URL string
	srv *http.Server
}

// StartFront listens on addr (empty or "127.0.0.1:0" for any free loopback port) and forwards
// every request to the emulator at emulatorURL as a call of API apiID.
func StartFront(addr, emulatorURL, apiID string) (*Front, error) {
	target, err := url.Parse(emulatorURL)
	if err != nil {
		return nil, fmt.Errorf("parse emulator URL %q: %w", emulatorURL, err)
	}
	l, err := listen(addr)
	if err != nil {
		return nil, fmt.Errorf("HTTP API front: %w", err)
	}
	host := apiID + ".execute-api.localhost"
	proxy := &httputil.ReverseProxy{
		Transport:    pooledTransport(),
		ErrorHandler: proxyError,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = host
			// API Gateway passes the caller's address and protocol on.
			r.SetXForwarded()
		},
	}
	f := &Front{URL: "http://" + l.Addr().String()}
	f.srv = &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.srv.Serve(l) }()
	return f, nil
}

// Close stops the front, letting requests in flight finish for a moment.
func (f *Front) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		_ = f.srv.Close()
	}
}

// proxyError answers 502 as API Gateway does when its backend fails. A
// caller that went away (a bootstrap stopped during its long poll of the
// Runtime API) is not an error worth a log line.
func proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) || r.Context().Err() != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	http.Error(w, `{"message":"Bad Gateway"}`, http.StatusBadGateway)
}
