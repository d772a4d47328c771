// Package e2e holds the end-to-end suite (its *_test.go files): it runs the
// whole system, or uses a deployed one, and drives it only through what an
// operator and ServiceNow see: the 2501 CLI, the ServiceNow simulator's
// record API, HTTP calls to the ingest route, the ticket list and the
// dispatch queue. See docs/testing.md, "The end-to-end suite".
package e2e
