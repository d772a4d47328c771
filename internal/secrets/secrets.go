// Package secrets keeps snowgate's secret material in AWS Secrets Manager:
// gateway credentials and webhook HMAC keys. Nothing secret is ever written
// to a table, a log line or an error message.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// ErrNotFound is returned when a secret does not exist (or was deleted).
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

// Delete removes a secret at once (no recovery window).
func (s *Store) Delete(ctx context.Context, arn string) error {
	_, err := s.sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
		SecretId:                   aws.String(arn),
		ForceDeleteWithoutRecovery: aws.Bool(true),
	})
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

func wrapNotFound(err error) error {
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
