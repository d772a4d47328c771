package secrets_test

import (
	"context"
	"errors"
	"testing"

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
