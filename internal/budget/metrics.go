package budget

// Metrics the processor, the writer and the reconciler emit (EMF, namespace
// "snowgate", dimension set ["function"]) about work the budget held back.
// Every batch or run writes both, zeros included, so an alarm sees a value
// rather than missing data.
const (
	// MetricPaused counts the requests (a message's or a reconciler
	// gateway's) deferred because their gateway's circuit was open: a 429
	// with Retry-After, an outage, a 401/403 waiting for a probe, or an
	// operator's pause. A gateway paused for long keeps it above zero; the
	// GatewayPaused alarm watches it.
	MetricPaused = "GatewayPaused"
	// MetricDeferred counts the requests deferred for want of tokens or of
	// a concurrency slot: the budget doing its job under load, not a fault.
	MetricDeferred = "BudgetDeferred"
)
