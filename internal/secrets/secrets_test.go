package secrets_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/smithy-go/middleware"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/secrets"
)

func TestMain(m *testing.M) { awstest.Main(m) }

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	s := secrets.New(secretsmanager.NewFromConfig(awstest.Config(t)))

	arn, err := s.Create(ctx, awstest.UniqueName("snowgate/test-"), `{"a":1}`, "test")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if got, err := s.Get(ctx, arn); err != nil || got != `{"a":1}` {
		t.Fatalf("Get = %q, %v; want {\"a\":1}", got, err)
	}
	if err := s.Put(ctx, arn, `{"a":2}`); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got, err := s.Get(ctx, arn); err != nil || got != `{"a":2}` {
		t.Fatalf("Get after Put = %q, %v; want {\"a\":2}", got, err)
	}
	if err := s.Delete(ctx, arn); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, arn); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, arn); err != nil {
		t.Fatalf("second Delete: %v, want nil", err)
	}
}

func TestConcurrentGetsShareOneCall(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int32
	cfg := awstest.Config(t)
	sm := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("count",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					if _, ok := in.Parameters.(*secretsmanager.GetSecretValueInput); ok {
						calls.Add(1)
					}
					return next.HandleInitialize(ctx, in)
				}), middleware.After)
		})
	})
	s := secrets.New(sm)
	arn, err := s.Create(ctx, awstest.UniqueName("snowgate/test-"), "v", "test")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = s.Delete(context.Background(), arn) })

	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if got, err := s.Get(ctx, arn); err != nil || got != "v" {
				t.Errorf("Get = %q, %v; want v", got, err)
			}
		})
	}
	wg.Wait()
	// The cache's effect on Secrets Manager traffic is the behaviour under
	// test here: ten cold readers, one call.
	if n := calls.Load(); n != 1 {
		t.Errorf("10 concurrent cold Gets made %d GetSecretValue calls, want 1", n)
	}
}
