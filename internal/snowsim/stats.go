package snowsim

import (
	"maps"
	"net/http"
)

// RequestKey counts requests by method and response status; status 0 is a
// dropped connection.
type RequestKey struct {
	Method string
	Status int
}

// Stats are the simulator's counters since New.
type Stats struct {
	Requests map[RequestKey]int
	// OutboundAttempted counts RESTMessageV2 execute/executeAsync calls;
	// OutboundFailed those that got no HTTP response (unreachable, timed out,
	// outbound switched off); OutboundStatus the responses by status code.
	OutboundAttempted int
	OutboundFailed    int
	OutboundStatus    map[int]int
	// OutboundResent counts executeAsync calls the ECC queue sent a second
	// time (each also counts in OutboundAttempted).
	OutboundResent int
	// RulesFired counts Business Rule script runs (a duplicate fault runs a
	// script twice); RuleErrors those that threw.
	RulesFired int
	RuleErrors int
}

func newStats() Stats {
	return Stats{Requests: map[RequestKey]int{}, OutboundStatus: map[int]int{}}
}

// Stats returns a copy of the counters.
func (s *Sim) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	st := s.stats
	st.Requests = maps.Clone(s.stats.Requests)
	st.OutboundStatus = maps.Clone(s.stats.OutboundStatus)
	return st
}

func (s *Sim) count(f func(*Stats)) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	f(&s.stats)
}

// statusWriter counts a response by method and status as its header is
// written, before the client can see it, so Stats never lag behind what a
// client observed.
type statusWriter struct {
	http.ResponseWriter
	sim      *Sim
	method   string
	status   int
	recorded bool
}

// record counts the request once; status 0 is a dropped connection.
func (w *statusWriter) record(status int) {
	if w.recorded {
		return
	}
	w.recorded, w.status = true, status
	w.sim.count(func(st *Stats) { st.Requests[RequestKey{w.method, status}]++ })
}

func (w *statusWriter) WriteHeader(code int) {
	w.record(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.record(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (to drop it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
