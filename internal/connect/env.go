package connect

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/secrets"
)

// EnvMaxPause optionally caps every pause of a gateway's budget
// (budget.Options.MaxPause), a Go duration such as "90s": for a system run
// in compressed time, such as the end-to-end tests, where a Retry-After of
// an hour must not hold a test for an hour. Unset: budget.DefaultMaxPause.
const EnvMaxPause = schema.EnvMaxPause

// MaxPauseFromEnv reads EnvMaxPause; 0 when unset.
func MaxPauseFromEnv(getenv func(string) string) (time.Duration, error) {
	v := strings.TrimSpace(getenv(EnvMaxPause))
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > budget.DefaultMaxPause {
		return 0, fmt.Errorf("%s=%q: want a duration above 0 and at most %s", EnvMaxPause, v, budget.DefaultMaxPause)
	}
	return d, nil
}

// ForFunction is the Pool of a function (processor, writer, reconciler):
// credentials read through Secrets Manager, every request budgeted on the
// state table's budget items, maxPause from MaxPauseFromEnv.
func ForFunction(cfg aws.Config, db *dynamodb.Client, stateTable string, maxPause time.Duration, log *slog.Logger) *Pool {
	return New(Config{
		Secrets: secrets.New(secretsmanager.NewFromConfig(cfg)),
		Budget:  budget.New(db, stateTable, budget.Options{MaxPause: maxPause}),
		Logger:  log,
	})
}
