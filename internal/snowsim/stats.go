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

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (to drop it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
