// Package budget keeps each gateway's ServiceNow budget in the state table,
// one item per gateway (pk "BUDGET#<gateway id>"), shared by every function
// and every concurrent invocation: the processor, the reconciler and the
// writer draw on the same item, so the instance sees one well-behaved
// client however many Lambda environments are running.
//
// # What it bounds, and why
//
// ServiceNow, not AWS, bounds this system. Its rate-limit rules count
// requests per user per hour, and each node serves a few API threads
// (semaphores) with a short queue behind them; a full queue answers 429
// without Retry-After and a request queued too long answers 500. So the
// budget has three parts:
//
//   - A request rate: a token bucket refilled at RatePerHour with room for
//     Burst requests at once. Over any interval T at most RatePerHour×T +
//     Burst requests are granted, so a rate chosen below the instance's
//     hourly rule never meets its 429 (see Settings and the learned limit
//     below). A per-hour rate matches how the instance counts; the burst
//     lets an SQS batch or a reconciler page go without waiting while
//     staying a small fraction of the hour.
//   - A concurrency ceiling: MaxConcurrency leased slots. A slot is a lease
//     with an expiry rather than a counter, so the slot of an invocation
//     that crashed, timed out or was frozen comes back by itself when its
//     lease ends; nobody has to repair a count.
//   - A circuit: the gateway is paused until a time, with a cause and a
//     reason that `gateway show` prints. A 429 with Retry-After or
//     X-RateLimit-Reset pauses until then; X-RateLimit-Remaining 0 pauses
//     until the reset; repeated 5xx or timeouts pause for an exponentially
//     growing, jittered time (Trip); 401 and 403 pause until a probe
//     succeeds. While paused, Take and Acquire return a *DeniedError whose
//     Until is the pause's end, so a caller pushes an SQS message's
//     visibility there instead of spending a receive.
//
// # Why DynamoDB, and what one call costs
//
// The quota is the instance's and every invocation spends it, so the
// budget has to live where all of them can see it atomically; the state
// table is already there, on demand, in every environment including the
// emulators. Every write is conditional, so concurrent takers never grant
// more than the item allows; a lost race re-reads the item and tries again,
// a bounded number of times.
//
// The bucket is stored as one number, full_at: the time at which the
// bucket will be full again (the "theoretical arrival time" of the generic
// cell rate algorithm, which is a token bucket written differently). The
// tokens left at time now are Burst − (full_at − now)/interval, where
// interval is an hour divided by the rate; the refill is computed from the
// stored time on every take and never needs a timer. Taking n tokens adds
// n×interval to full_at, and because DynamoDB adds atomically ("SET full_at
// = full_at + :inc" under the condition that full_at leaves room for n),
// concurrent takers of a busy bucket do not conflict with each other at
// all; only the first take after an idle spell sets full_at outright.
// The item also records the interval and burst full_at counts in, and a
// take's condition names them: a taker that counts differently (a learned
// limit it has not seen yet, a settings change that reached one function
// before another) fails, reads the item and converts the bucket, keeping
// the tokens owed, so callers that disagree for a while never spend more
// than one bucket between them.
//
// On the happy path a Take or an Acquire is one conditional UpdateItem (it
// returns the new item, which refreshes the per-process view the next call
// builds its condition from); Release is one more. Reporting an outcome
// (Report, Observe, Succeed) costs nothing unless it changes something the
// item holds: a lower learned limit, a pause, a failure count to reset.
// A condition that fails returns the item with the failure where DynamoDB
// supports it (ReturnValuesOnConditionCheckFailure); otherwise the budget
// reads it once, strongly consistent.
//
// # Learning down
//
// When the instance sends X-RateLimit-Limit (an hourly rule applies to our
// user), Observe stores it, and the effective rate becomes the lower of
// the configured rate and what fits under the instance's limit with the
// burst on top (limit − burst, the burst shrinking to a tenth of the limit
// for small limits), so that no hour ever holds more requests than the
// instance allows. A limit higher than ours never raises the rate above
// the configured one. X-RateLimit-Remaining below the tokens we hold takes
// the surplus away (other clients of the same user spent it).
//
// # Using it
//
//	b := budget.New(db, stateTable, budget.Options{})
//	g, err := b.Acquire(ctx, gatewayID, settings, 1) // a slot and a token
//	if until, ok := budget.RetryAt(err); ok {
//		// paused or out of budget: push the message's visibility to until
//	}
//	resp, callErr := client.Do(...)
//	err = b.Done(ctx, g, budget.Outcome{Status: resp.StatusCode, Header: resp.Header, Err: callErr})
//
// Settings come from the gateway's registry item; zero fields take the
// package defaults (DefaultRatePerHour, DefaultBurst, DefaultMaxConcurrency).
package budget
