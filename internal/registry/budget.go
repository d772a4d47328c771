package registry

import "github.com/snowgate/snowgate/internal/budget"

// BudgetSettings are the gateway's ServiceNow budget as the budget package
// takes them: the processor, the reconciler and the writer pass them to
// every Take and Acquire, and `gateway show` to Status, so that all of them
// count the same bucket. A zero RateLimitPerHour or MaxConcurrency is left
// zero, for the package's defaults.
//
// The burst is not a setting of its own: it is DefaultBurst, or a tenth of
// a configured rate when that is smaller (BurstFor), so that a rate set low
// for a small instance is not undone by a burst of the default's size. Over
// any hour at most RateLimitPerHour + burst requests go, as the budget
// package documents.
func (g Gateway) BudgetSettings() budget.Settings {
	s := budget.Settings{RatePerHour: max(0, g.RateLimitPerHour), MaxConcurrency: max(0, g.MaxConcurrency)}
	if s.RatePerHour > 0 {
		s.Burst = BurstFor(s.RatePerHour)
	}
	return s
}

// BurstFor is the burst that comes with a configured rate (requests per
// hour): a tenth of it, at least 1 and at most budget.DefaultBurst. The
// budget shrinks the burst of a learned X-RateLimit-Limit the same way.
func BurstFor(ratePerHour int) int {
	return max(1, min(budget.DefaultBurst, ratePerHour/10))
}
