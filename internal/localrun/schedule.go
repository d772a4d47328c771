package localrun

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/google/uuid"
)

// DefaultInterval is the reconciler's schedule, rate(2 minutes).
const DefaultInterval = 2 * time.Minute

// localAccount is the account id emulators use.
const localAccount = "000000000000"

// Schedule is an EventBridge rule with a rate expression targeting one
// function: every Interval it invokes the function with a "Scheduled Event".
// The first event comes one interval after Run starts, as with a new rule.
type Schedule struct {
	Lambda Invoker
	Log    *slog.Logger

	Function string
	Rule     string
	Region   string
	Interval time.Duration
}

// RuleARN is the ARN the events name as their resource.
func (s *Schedule) RuleARN() string {
	return fmt.Sprintf("arn:aws:events:%s:%s:rule/%s", s.Region, localAccount, s.Rule)
}

// Run fires until ctx is done. Invocations are synchronous so that a failure
// shows in the log and two runs never overlap; a tick that comes while the
// function is still running is skipped.
func (s *Schedule) Run(ctx context.Context) error {
	interval := s.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			s.fire(ctx, now)
		}
	}
}

func (s *Schedule) fire(ctx context.Context, now time.Time) {
	payload, err := json.Marshal(s.Event(now))
	if err != nil {
		s.Log.Error("encode scheduled event", "error", err)
		return
	}
	out, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{
		FunctionName: aws.String(s.Function),
		Payload:      payload,
	})
	switch {
	case ctx.Err() != nil:
	case err != nil:
		s.Log.Error("invoke scheduled function", "function", s.Function, "error", err)
	case out.FunctionError != nil:
		s.Log.Warn("scheduled function failed", "function", s.Function,
			"error", aws.ToString(out.FunctionError), "payload", string(out.Payload))
	}
}

// Event is the scheduled event EventBridge sends at time now.
func (s *Schedule) Event(now time.Time) events.EventBridgeEvent {
	return events.EventBridgeEvent{
		Version:    "0",
		ID:         uuid.NewString(),
		DetailType: "Scheduled Event",
		Source:     "aws.events",
		AccountID:  localAccount,
		Time:       now.UTC().Truncate(time.Second),
		Region:     s.Region,
		Resources:  []string{s.RuleARN()},
		Detail:     json.RawMessage(`{}`),
	}
}
