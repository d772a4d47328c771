// Package secrets keeps snowgate's secret material in AWS Secrets Manager:
// gateway credentials and webhook HMAC keys. Nothing secret is ever written
// to a table, a log line or an error message.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// ErrNotFound is returned when a secret does not exist, or is scheduled
// for deletion.
var ErrNotFound = errors.New("secret not found")

// Store reads and writes secrets, caching reads for TTL. Concurrent reads of
// a secret that is not cached share one GetSecretValue call: a cold processor
// fetching a batch of ten records of one gateway asks Secrets Manager once,
// not ten times (its API is rate limited and billed per call).
type Store struct {
	sm  *secretsmanager.Client
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	cache    map[string]cached
	inflight map[string]*fetch
}

// fetch is one GetSecretValue call that concurrent readers wait for.
type fetch struct {
	done  chan struct{}
	value string
	err   error
}

type cached struct {
	value   string
	fetched time.Time
}

// DefaultTTL is how long a read secret is reused before it is fetched again.
const DefaultTTL = 5 * time.Minute

// New returns a Store over a Secrets Manager client.
func New(sm *secretsmanager.Client) *Store {
	return &Store{sm: sm, ttl: DefaultTTL, now: time.Now, cache: map[string]cached{}, inflight: map[string]*fetch{}}
}

// Create stores a new secret under name and returns its ARN.
func (s *Store) Create(ctx context.Context, name, value, description string) (string, error) {
	out, err := s.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String(name),
		SecretString: aws.String(value),
		Description:  aws.String(description),
	})
	if err != nil {
		return "", fmt.Errorf("create secret %s: %w", name, err)
	}
	return aws.ToString(out.ARN), nil
}

// Put replaces the value of an existing secret.
func (s *Store) Put(ctx context.Context, arn, value string) error {
	_, err := s.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:     aws.String(arn),
		SecretString: aws.String(value),
	})
	if err != nil {
		return fmt.Errorf("put secret %s: %w", arn, wrapNotFound(err))
	}
	s.Forget(arn)
	return nil
}

// Get returns a secret's value, from the cache when it is fresh.
func (s *Store) Get(ctx context.Context, arn string) (string, error) {
	s.mu.Lock()
	if c, ok := s.cache[arn]; ok && s.now().Sub(c.fetched) < s.ttl {
		s.mu.Unlock()
		return c.value, nil
	}
	f, waiting := s.inflight[arn]
	if !waiting {
		f = &fetch{done: make(chan struct{})}
		s.inflight[arn] = f
	}
	s.mu.Unlock()

	if waiting {
		select {
		case <-f.done:
			return f.value, f.err
		case <-ctx.Done():
			return "", fmt.Errorf("get secret %s: %w", arn, ctx.Err())
		}
	}

	f.value, f.err = s.fetch(ctx, arn)
	s.mu.Lock()
	delete(s.inflight, arn)
	if f.err == nil {
		s.cache[arn] = cached{value: f.value, fetched: s.now()}
	}
	s.mu.Unlock()
	close(f.done)
	return f.value, f.err
}

func (s *Store) fetch(ctx context.Context, arn string) (string, error) {
	out, err := s.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("get secret %s: %w", arn, wrapNotFound(err))
	}
	return aws.ToString(out.SecretString), nil
}

// Forget drops a cached value, so the next Get fetches it again (after an
// authentication failure, for instance, in case the secret was rotated).
func (s *Store) Forget(arn string) {
	s.mu.Lock()
	delete(s.cache, arn)
	s.mu.Unlock()
}

// RecoveryWindowDays is how long a deleted secret can still be restored
// (aws secretsmanager restore-secret) before Secrets Manager removes it.
const RecoveryWindowDays = 7

// Delete schedules a secret's deletion after RecoveryWindowDays: a gateway
// or webhook deleted by mistake can have its secret restored meanwhile.
// A secret that does not exist, or is already scheduled for deletion, is no
// error. A secret pending deletion keeps its name until it is gone, so a
// name must never be used twice: the names snowgate gives are made of
// fresh ids (schema.GatewaySecretName, schema.WebhookKeyName).
func (s *Store) Delete(ctx context.Context, arn string) error {
	return s.delete(ctx, arn, &secretsmanager.DeleteSecretInput{
		SecretId:             aws.String(arn),
		RecoveryWindowInDays: aws.Int64(RecoveryWindowDays),
	})
}

// Discard removes a secret at once, without a recovery window: only for a
// secret just created for an operation that then failed, which nothing ever
// pointed at.
func (s *Store) Discard(ctx context.Context, arn string) error {
	return s.delete(ctx, arn, &secretsmanager.DeleteSecretInput{
		SecretId:                   aws.String(arn),
		ForceDeleteWithoutRecovery: aws.Bool(true),
	})
}

func (s *Store) delete(ctx context.Context, arn string, in *secretsmanager.DeleteSecretInput) error {
	_, err := s.sm.DeleteSecret(ctx, in)
	s.Forget(arn)
	if err != nil {
		err = wrapNotFound(err)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return fmt.Errorf("delete secret %s: %w", arn, err)
	}
	return nil
}

// wrapNotFound makes ErrNotFound of a secret that does not exist and of one
// scheduled for deletion: Secrets Manager answers the second with an
// InvalidRequestException whose message says so (worded differently by
// AWS, moto and kumo, each mentioning the deletion).
func wrapNotFound(err error) error {
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var ir *smtypes.InvalidRequestException
	if errors.As(err, &ir) && strings.Contains(strings.ToLower(ir.ErrorMessage()), "delet") {
		return fmt.Errorf("%w (scheduled for deletion): %w", ErrNotFound, err)
	}
	return err
}
