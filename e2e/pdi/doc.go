// Package pdi holds an opt-in suite (its *_test.go files) that runs against
// a real ServiceNow instance, such as a free personal developer instance,
// and settles what ServiceNow's documents leave open: how plain date
// literals in an encoded query are read for a user outside UTC, whether a
// page sent with sysparm_no_count=true carries Link rel="next", how the
// case of a string compares in a Business Rule filter condition and in a
// Table API query, what a journal write does to sys_mod_count, how late
// executeAsync() delivers, and which headers a rate limit rule sends.
//
// Every test skips unless SNOWGATE_PDI_URL, SNOWGATE_PDI_USER and
// SNOWGATE_PDI_PASSWORD are set, so go test ./... passes without an
// instance; make test-pdi runs it. Each raw answer it sees is written,
// with credentials, cookies and tokens redacted, as a fixture under
// internal/servicenow/testdata/pdi, for the client's and the simulator's
// tests to be held to. See docs/testing.md, "Against a real instance".
package pdi
