package watermark_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/watermark"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const gw = "gtw_00000000-0000-4000-8000-000000000001"

func newStore(t *testing.T) *watermark.Store {
	t.Helper()
	r := awstest.Resources(t)
	return watermark.New(dynamodb.NewFromConfig(awstest.Config(t)), r.StateTable)
}

func at(s string) time.Time {
	t, err := time.Parse(watermark.TimeLayout, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestAdvanceOnlyForward(t *testing.T) {
	t0 := at("2026-03-01 10:00:00")
	tests := []struct {
		name    string
		steps   []watermark.Position
		wantErr []error
		want    watermark.Position
	}{
		{
			name:    "first write",
			steps:   []watermark.Position{{t0, "b"}},
			wantErr: []error{nil},
			want:    watermark.Position{t0, "b"},
		},
		{
			name:    "later second",
			steps:   []watermark.Position{{t0, "b"}, {t0.Add(time.Second), "a"}},
			wantErr: []error{nil, nil},
			want:    watermark.Position{t0.Add(time.Second), "a"},
		},
		{
			name:    "same second, later sys_id",
			steps:   []watermark.Position{{t0, "b"}, {t0, "c"}},
			wantErr: []error{nil, nil},
			want:    watermark.Position{t0, "c"},
		},
		{
			name:    "same second, earlier sys_id is refused",
			steps:   []watermark.Position{{t0, "b"}, {t0, "a"}},
			wantErr: []error{nil, watermark.ErrBehind},
			want:    watermark.Position{t0, "b"},
		},
		{
			name:    "earlier second with a larger sys_id is refused",
			steps:   []watermark.Position{{t0, "b"}, {t0.Add(-time.Second), "z"}},
			wantErr: []error{nil, watermark.ErrBehind},
			want:    watermark.Position{t0, "b"},
		},
		{
			name:    "same position is refused",
			steps:   []watermark.Position{{t0, "b"}, {t0, "b"}},
			wantErr: []error{nil, watermark.ErrBehind},
			want:    watermark.Position{t0, "b"},
		},
	}
	s := newStore(t)
	ctx := context.Background()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			table := fmt.Sprintf("t%d", i)
			for j, p := range tc.steps {
				if err := s.Advance(ctx, gw, table, p); !errors.Is(err, tc.wantErr[j]) {
					t.Fatalf("Advance(%s) = %v, want %v", p, err, tc.wantErr[j])
				}
			}
			m, err := s.Get(ctx, gw, table)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if diff := cmp.Diff(tc.want, m.Position); diff != "" {
				t.Errorf("position (-want +got):\n%s", diff)
			}
			if m.GatewayID != gw || m.Table != table {
				t.Errorf("Get = %s/%s, want %s/%s", m.GatewayID, m.Table, gw, table)
			}
		})
	}
}

func TestGetMissing(t *testing.T) {
	s := newStore(t)
	if _, err := s.Get(context.Background(), gw, "incident"); !errors.Is(err, watermark.ErrNotFound) {
		t.Fatalf("Get = %v, want ErrNotFound", err)
	}
}

func TestMarkSynced(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	t1 := time.Date(2026, 3, 1, 10, 0, 0, 123e6, time.UTC)
	if err := s.MarkSynced(ctx, gw, "incident", t1); err != nil {
		t.Fatalf("MarkSynced: %v", err)
	}
	if err := s.MarkSynced(ctx, gw, "incident", t1.Add(-time.Minute)); !errors.Is(err, watermark.ErrBehind) {
		t.Fatalf("MarkSynced(earlier) = %v, want ErrBehind", err)
	}
	// Position and synced time are independent: advancing keeps SyncedAt.
	p := watermark.Position{at("2026-03-01 09:59:00"), "x"}
	if err := s.Advance(ctx, gw, "incident", p); err != nil {
		t.Fatalf("Advance: %v", err)
	}
	m, err := s.Get(ctx, gw, "incident")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !m.SyncedAt.Equal(t1) || m.Position != p {
		t.Errorf("Get = synced %v at %s, want synced %v at %s", m.SyncedAt, m.Position, t1, p)
	}
}

// Overlapping runs writing interleaved positions leave the greatest one.
func TestConcurrentAdvance(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	t0 := at("2026-03-01 10:00:00")
	var positions []watermark.Position
	for i := range 40 {
		positions = append(positions, watermark.Position{t0.Add(time.Duration(i/4) * time.Second), fmt.Sprintf("%02d", i)})
	}
	want := positions[len(positions)-1]
	rand.Shuffle(len(positions), func(i, j int) { positions[i], positions[j] = positions[j], positions[i] })

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(positions); i += 4 {
				if err := s.Advance(ctx, gw, "incident", positions[i]); err != nil && !errors.Is(err, watermark.ErrBehind) {
					t.Errorf("Advance(%s): %v", positions[i], err)
				}
			}
		})
	}
	wg.Wait()
	m, err := s.Get(ctx, gw, "incident")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if m.Position != want {
		t.Errorf("position = %s, want %s", m.Position, want)
	}
}
