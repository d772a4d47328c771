package secrets_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

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
	if err := s.Discard(ctx, arn); err != nil {
		t.Fatalf("Discard after Delete: %v, want nil", err)
	}
	if err := s.Discard(ctx, arn); err != nil {
		t.Fatalf("second Discard: %v, want nil", err)
	}
}

// deletes records the DeleteSecret requests a client sends.
type deletes struct {
	mu  sync.Mutex
	ins []secretsmanager.DeleteSecretInput
}

func (d *deletes) client(t *testing.T) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(awstest.Config(t), func(o *secretsmanager.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("record",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					if p, ok := in.Parameters.(*secretsmanager.DeleteSecretInput); ok {
						d.mu.Lock()
						d.ins = append(d.ins, *p)
						d.mu.Unlock()
					}
					return next.HandleInitialize(ctx, in)
				}), middleware.After)
		})
	})
}

// Delete leaves the secret restorable for the recovery window: it still
// exists, scheduled for deletion, unreadable; Discard removes one at once.
// What the emulator holds afterwards is checked with DescribeSecret.
func TestDeleteKeepsARecoveryWindowDiscardDoesNot(t *testing.T) {
	ctx := context.Background()
	var rec deletes
	sm := rec.client(t)
	s := secrets.New(sm)
	deleted, err := s.Create(ctx, awstest.UniqueName("snowgate/test-deleted-"), "v", "test")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	discarded, err := s.Create(ctx, awstest.UniqueName("snowgate/test-discarded-"), "v", "test")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = s.Discard(context.Background(), deleted) })
	if err := s.Delete(ctx, deleted); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Discard(ctx, discarded); err != nil {
		t.Fatalf("Discard: %v", err)
	}

	d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(deleted)})
	if err != nil {
		t.Fatalf("DescribeSecret(deleted): %v, want the secret, scheduled for deletion", err)
	}
	if d.DeletedDate == nil {
		t.Errorf("deleted secret has no DeletedDate: not scheduled for deletion")
	}
	if _, err := s.Get(ctx, deleted); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Get(scheduled for deletion) = %v, want ErrNotFound", err)
	}
	var nf *smtypes.ResourceNotFoundException
	if _, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(discarded)}); !errors.As(err, &nf) {
		t.Errorf("DescribeSecret(discarded) = %v, want ResourceNotFoundException", err)
	}

	want := []secretsmanager.DeleteSecretInput{
		{SecretId: aws.String(deleted), RecoveryWindowInDays: aws.Int64(secrets.RecoveryWindowDays)},
		{SecretId: aws.String(discarded), ForceDeleteWithoutRecovery: aws.Bool(true)},
	}
	rec.mu.Lock()
	got := rec.ins
	rec.mu.Unlock()
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(secretsmanager.DeleteSecretInput{})); diff != "" {
		t.Errorf("DeleteSecret requests (-want +got):\n%s", diff)
	}
	if secrets.RecoveryWindowDays < 7 || secrets.RecoveryWindowDays > 30 {
		t.Errorf("RecoveryWindowDays = %d, Secrets Manager takes 7 to 30", secrets.RecoveryWindowDays)
	}
}

// A name stays taken while its secret is pending deletion, on AWS and on
// both emulators: this is why every secret snowgate creates has a name of
// its own, made of a fresh id, instead of restoring or reusing one.
func TestNamePendingDeletionIsTaken(t *testing.T) {
	ctx := context.Background()
	s := secrets.New(secretsmanager.NewFromConfig(awstest.Config(t)))
	name := awstest.UniqueName("snowgate/test-pending-")
	arn, err := s.Create(ctx, name, "v", "test")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = s.Discard(context.Background(), arn) })
	if err := s.Delete(ctx, arn); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if again, err := s.Create(ctx, name, "w", "test"); err == nil {
		t.Cleanup(func() { _ = s.Discard(context.Background(), again) })
		t.Errorf("Create(%q) while it is pending deletion succeeded; the emulator no longer keeps the name", name)
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
