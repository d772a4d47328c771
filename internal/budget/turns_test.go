package budget_test

import (
	"context"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/schema"
)

// A backlog denied at once gets turns one token interval apart, from the
// denial's Until on, however many processes book them concurrently; a
// booking after the queue of turns has passed starts again at its own
// time.
func TestBookSpreadsTurns(t *testing.T) {
	// Concurrent conditional writes of one item: moto does not isolate
	// them.
	skipOnMoto(t)
	e := newEnv(t)
	ctx := context.Background()
	s := budget.Settings{RatePerHour: 3600, Burst: 1, MaxConcurrency: 4} // a token a second
	from := t0.Add(5 * time.Second)

	const n = 12
	turns := make([]time.Time, n)
	var wg sync.WaitGroup
	for i := range n {
		b := e.budget(budget.Options{}) // each its own process
		wg.Go(func() {
			tt, err := b.Book(ctx, gw, s, from)
			if err != nil {
				t.Errorf("Book: %v", err)
			}
			turns[i] = tt
		})
	}
	wg.Wait()
	sort.Slice(turns, func(i, j int) bool { return turns[i].Before(turns[j]) })
	for i, tt := range turns {
		if want := from.Add(time.Duration(i) * time.Second); !tt.Equal(want) {
			t.Errorf("turn %d = %s, want %s", i, tt.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}

	later := turns[n-1].Add(time.Minute)
	got, err := e.budget(budget.Options{}).Book(ctx, gw, s, later)
	if err != nil {
		t.Fatalf("Book: %v", err)
	}
	if !got.Equal(later) {
		t.Errorf("turn after the queue passed = %s, want %s", got, later)
	}
}

// Every write renews the item's TTL, so the item of a deleted gateway goes
// by itself and a live one never does.
func TestItemTTLRenewed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b := e.budget(budget.Options{})
	if _, err := b.Take(ctx, gw, budget.Settings{}, 1); err != nil {
		t.Fatal(err)
	}
	expires := func() int64 {
		t.Helper()
		out, err := e.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(e.table), Key: map[string]ddbtypes.AttributeValue{
			schema.AttrPK: &ddbtypes.AttributeValueMemberS{Value: budget.Key(gw)}}})
		if err != nil {
			t.Fatal(err)
		}
		n, _ := out.Item[schema.AttrExpiresAt].(*ddbtypes.AttributeValueMemberN)
		if n == nil {
			t.Fatalf("budget item without %s: %v", schema.AttrExpiresAt, out.Item)
		}
		v, _ := strconv.ParseInt(n.Value, 10, 64)
		return v
	}
	if got, want := expires(), t0.Add(budget.ItemTTL).Unix(); got != want {
		t.Errorf("expires_at = %d, want %d (now + ItemTTL)", got, want)
	}
	e.clk.advance(time.Hour)
	if _, err := b.Take(ctx, gw, budget.Settings{}, 1); err != nil {
		t.Fatal(err)
	}
	if got, want := expires(), t0.Add(time.Hour+budget.ItemTTL).Unix(); got != want {
		t.Errorf("expires_at after another take = %d, want %d", got, want)
	}
}
