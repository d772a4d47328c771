package localrun

import (
	"net/http"
	"time"
)

// loopbackConns is how many idle connections each local hop keeps to the
// next. net/http's default keeps two per host: with more requests than that
// in flight, every further one opens a TCP connection and closes it after
// use, and at make dev's webhook rates the machine then spends its time in
// the kernel setting up and tearing down loopback connections (thousands in
// TIME_WAIT) instead of serving the requests.
const loopbackConns = 512

// pooledTransport is http.DefaultTransport's behaviour with a pool as large
// as the concurrency of a local hop can be.
func pooledTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0 // no overall limit
	t.MaxIdleConnsPerHost = loopbackConns
	t.IdleConnTimeout = time.Minute
	return t
}

// PoolDefaultTransport raises http.DefaultTransport's idle pool to what
// pooledTransport keeps. The embedded emulator's HTTP API invokes the
// function behind a route through http.DefaultClient (back through the
// emulator's own address), which make dev cannot give a transport of its
// own. Call it at the start of main, before any request is made: it changes
// a value every package of the program shares.
func PoolDefaultTransport() {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		t.MaxIdleConns = 0
		t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, loopbackConns)
	}
}
