// Package e2e holds the end-to-end suite (its *_test.go files): it runs the
// whole system, or uses a deployed one, and drives it only through what an
// operator, ServiceNow and an automation engine see: the 2501 CLI, the
// ServiceNow simulator's record API, HTTP calls to the ingest route, the
// ticket list, and the dispatch and results queues. make dev's demo engine
// answers the job events; the suite relays both queues through queues of
// its own, so it records every event and result (each checked against its
// published schema) while the engine and the writer still get them all.
// See docs/testing.md, "The end-to-end suite".
package e2e
