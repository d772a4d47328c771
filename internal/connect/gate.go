package connect

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/servicenow"
)

// gate admits a gateway's requests through its budget.
type gate struct {
	budget    *budget.Budget
	gatewayID string
	settings  budget.Settings
	wait      time.Duration
	log       *slog.Logger
}

var _ servicenow.Gate = (*gate)(nil)

// reportTimeout bounds the budget writes after a request, which must not
// be cut short by the caller's own deadline: a slot left unreleased holds
// until its lease ends.
const reportTimeout = 5 * time.Second

func (g *gate) Admit(ctx context.Context) (func(*servicenow.Signal), error) {
	wait := g.wait
	if w, ok := ctx.Value(waitKey{}).(time.Duration); ok && w > wait {
		wait = w
	}
	grant, err := g.budget.AcquireWait(ctx, g.gatewayID, g.settings, 1, wait)
	if err != nil {
		var d *budget.DeniedError
		if errors.As(err, &d) && errors.Is(d.Err, budget.ErrNoTokens) {
			// Come back at this request's turn, not with everybody
			// else when the next token is due.
			if turn, berr := g.budget.Book(ctx, g.gatewayID, g.settings, d.Until); berr == nil {
				late := *d
				late.Until = turn
				return nil, &late
			}
		}
		return nil, err
	}
	return func(sig *servicenow.Signal) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
		defer cancel()
		if err := g.budget.Done(rctx, grant, outcomeOf(sig)); err != nil {
			g.log.WarnContext(ctx, "budget after a ServiceNow request", "gateway_id", g.gatewayID, "error", err.Error())
		}
	}, nil
}

type waitKey struct{}

// WithWait lets the requests made with ctx wait in process up to d for
// their budget (a pause that ends within d included) instead of the
// pool's Config.Wait, within ctx's deadline: for a write that has no
// message to be deferred with, such as the processor's work note after
// the job's events are sent.
func WithWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, waitKey{}, d)
}

// outcomeOf is what a request's Signal tells the budget (see
// budget.Report).
func outcomeOf(sig *servicenow.Signal) budget.Outcome {
	switch {
	case sig == nil:
		// The caller cancelled: nothing was learnt.
		return budget.Outcome{}
	case sig.Status == http.StatusUnauthorized && sig.Retrying:
		// An expired OAuth token, fetched anew at once: not a refusal.
		return budget.Outcome{Header: sig.Header}
	case sig.Retrying && (sig.Status == 0 || sig.Status >= 500 || sig.Outcome == servicenow.OutcomeFailed):
		// A failed attempt the client sends again: the call's last
		// attempt says whether it failed. One record that fails on every
		// attempt (a script error on it) is one failure, not an outage.
		return budget.Outcome{Header: sig.Header}
	case sig.Status >= 200 && sig.Status < 300 && sig.Outcome == servicenow.OutcomeFailed:
		// A 2xx that is not the API's answer (a hibernating instance's
		// page, an error envelope): the instance is not serving.
		return budget.Outcome{Status: http.StatusServiceUnavailable, Header: sig.Header, Err: sig.Err}
	case sig.Status == http.StatusBadRequest && sig.Outcome == servicenow.OutcomeDenied:
		// The token endpoint refusing the grant: the credentials are wrong.
		return budget.Outcome{Status: http.StatusUnauthorized, Header: sig.Header, Err: sig.Err}
	case sig.Status == http.StatusForbidden && sig.Table == servicenow.TableJournal:
		// The integration user may not read comments and work notes:
		// the processor decides without them and says so on the ticket.
		// Pausing the gateway would hold back the records it can read.
		return budget.Outcome{Status: http.StatusOK, Header: sig.Header}
	case sig.Status == 0 && sig.Err == nil:
		return budget.Outcome{Err: errors.New("no answer")}
	}
	return budget.Outcome{Status: sig.Status, Header: sig.Header, Err: sig.Err}
}

// RetryAfter is how long a failed ServiceNow call must wait before it is
// tried again, zero when nobody said: until the gateway's budget admits it
// (a *budget.DeniedError in err's chain), or what ServiceNow asked for
// (Retry-After, X-RateLimit-Reset).
func RetryAfter(err error, now time.Time) time.Duration {
	if until, ok := budget.RetryAt(err); ok {
		return max(0, until.Sub(now))
	}
	var se *servicenow.Error
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

// Paused reports whether err is a request held back because its gateway
// is paused, as opposed to one waiting for tokens or a slot.
func Paused(err error) bool { return errors.Is(err, budget.ErrPaused) }

// HeldMetric names the metric a request held back by the budget counts in
// (budget.MetricPaused or budget.MetricDeferred), "" for any other error.
func HeldMetric(err error) string {
	switch {
	case !servicenow.IsNotAdmitted(err):
		return ""
	case Paused(err):
		return budget.MetricPaused
	}
	return budget.MetricDeferred
}
