package state

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/snowgate/snowgate/internal/schema"
)

// StuckAfter is how long after a failed attempt (or a claim's expiry) a
// ticket without a completed decision counts as stuck: the time SQS takes
// to deliver the failed message again (the intake queue's visibility
// timeout). Only when that redelivery did not decide it (the message was
// dead-lettered, or lost) does the reconciler's copy matter.
var StuckAfter = schema.Intake.VisibilityTimeout

// markConcurrency bounds the marker writes MarkQueued has in flight.
const markConcurrency = 8

// StuckTickets returns up to limit (0: all) of the gateway's tickets whose
// decision is pending since before now − StuckAfter: released claims
// (retrying), claims past their lease (processing, the processor gone),
// and failures before any claim. It reads the sparse schema.IndexStuck,
// one Query per gateway whatever the number of tickets; a ticket leaves
// the index when a decision completes (or a claim finds nothing left to
// decide, or a permanent failure). The earliest stuck come first.
func (s *Store) StuckTickets(ctx context.Context, gatewayID string, now time.Time, limit int) ([]Ticket, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(schema.IndexStuck),
		KeyConditionExpression:    aws.String("#pk = :pk AND #at <= :now"),
		ExpressionAttributeNames:  map[string]string{"#pk": schema.AttrStuckPK, "#at": schema.AttrStuckAt},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":pk": str(stuckPrefix + gatewayID), ":now": str(now.UTC().Format(dueLayout))},
	}
	tickets, err := s.query(ctx, in, limit)
	if err != nil {
		return nil, fmt.Errorf("stuck tickets of %s: %w", gatewayID, err)
	}
	sort.SliceStable(tickets, func(i, j int) bool { return tickets[i].StuckAt < tickets[j].StuckAt })
	return tickets, nil
}

// Enqueued is a record the reconciler is about to put on the intake queue.
type Enqueued struct {
	Key
	// Version is the sys_mod_count it is enqueued for (-1: unknown).
	Version int
	// DueAt, for a due change request, is the due time it is sent for.
	DueAt string
}

// MarkQueued records on each ticket that the reconciler enqueued it at
// its version, valid until until (queued_version, queued_until): until
// then the reconciler's checks (Ticket.Queued, Known.Handled) count it as
// handled, so a run does not enqueue again what is still on the queue. A
// due change request also records its due time (due_sent), so it is sent
// once per due time. The marker is written before the message is sent and
// is never needed for correctness: should the message vanish, the marker
// expires and the next run enqueues the record again; a decision at or
// above its version makes it moot (the decided version is the first
// check). A record unknown to the table gets an item with its key and the
// marker only. Writes run a few at a time; the first error is returned.
func (s *Store) MarkQueued(ctx context.Context, marks []Enqueued, until time.Time) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, markConcurrency)
	)
	for _, m := range marks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.markQueued(ctx, m, until); err != nil {
				mu.Lock()
				first = errors.Join(first, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

func (s *Store) markQueued(ctx context.Context, m Enqueued, until time.Time) error {
	u := newUpdate()
	u.set("gateway_id", str(m.GatewayID))
	u.set("table", str(m.Table))
	u.set("sys_id", str(m.SysID))
	u.set("queued_version", num(m.Version))
	u.set("queued_until", num64(until.UnixMilli()))
	if m.DueAt != "" {
		u.set("due_sent", str(m.DueAt))
	}
	if _, err := s.db.UpdateItem(ctx, u.input(s.table, m.PK(), ddbtypes.ReturnValueNone)); err != nil {
		return fmt.Errorf("mark %s queued: %w", m.PK(), err)
	}
	return nil
}

// DecidedVersion returns the ticket's decided version, and false when no
// decision on it completed (or the ticket is unknown). One eventually
// consistent GetItem of one attribute: a stale answer can only be lower
// than the truth (the decided version never goes down), which costs a
// fetch, never a lost change.
func (s *Store) DecidedVersion(ctx context.Context, k Key) (int, bool, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                aws.String(s.table),
		Key:                      pkKey(k.PK()),
		ProjectionExpression:     aws.String("#d"),
		ExpressionAttributeNames: map[string]string{"#d": "decided_version"},
	})
	if err != nil {
		return 0, false, fmt.Errorf("decided version of %s: %w", k.PK(), err)
	}
	n, ok := out.Item["decided_version"].(*ddbtypes.AttributeValueMemberN)
	if !ok {
		return 0, false, nil
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		return 0, false, fmt.Errorf("decided version of %s: %q: %w", k.PK(), n.Value, err)
	}
	return v, true, nil
}
