package state

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/snowgate/snowgate/internal/schema"
)

// maxBatchGet is the most keys DynamoDB takes in one BatchGetItem call.
const maxBatchGet = 100

// versionsAttempts bounds how often Versions asks again for keys DynamoDB
// left unprocessed (throttling); the SDK already retries failed calls.
const versionsAttempts = 6

// Known is what the state table holds of a record's versions for the
// reconciler.
type Known struct {
	// Decided is the ticket's decided version; -1 when no decision on it
	// completed (a claim that failed, a failure before any claim).
	Decided int
	// QueuedVersion and QueuedUntil are the reconciler's queued marker
	// (MarkQueued); QueuedUntil is zero without one.
	QueuedVersion int
	QueuedUntil   time.Time
}

// Handled reports whether version v needs no intake message at now: it is
// decided, or the reconciler enqueued it (or a newer one) and the marker
// is still valid.
func (k Known) Handled(v int, now time.Time) bool {
	return v <= k.Decided || v <= k.QueuedVersion && now.Before(k.QueuedUntil)
}

// Versions returns, for each of the given records of a gateway's table
// that the state table knows, its decided version and queued marker;
// records it knows nothing about are absent. The reconciler uses it to
// skip records already handled, so it reads only the key, the decided
// version and the marker, eventually consistent: a stale answer costs one
// duplicate intake message, which the processor drops (its cheap
// duplicate check, or its claim). A version whose decision did not
// complete is not handled, so the record is enqueued again.
func (s *Store) Versions(ctx context.Context, gatewayID, table string, sysIDs []string) (map[string]Known, error) {
	out := make(map[string]Known, len(sysIDs))
	seen := make(map[string]bool, len(sysIDs))
	var keys []map[string]ddbtypes.AttributeValue
	for _, id := range sysIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		keys = append(keys, pkKey(Key{GatewayID: gatewayID, Table: table, SysID: id}.PK()))
	}
	for start := 0; start < len(keys); start += maxBatchGet {
		if err := s.versionsChunk(ctx, keys[start:min(start+maxBatchGet, len(keys))], out); err != nil {
			return nil, fmt.Errorf("versions of %s/%s: %w", gatewayID, table, err)
		}
	}
	return out, nil
}

func (s *Store) versionsChunk(ctx context.Context, keys []map[string]ddbtypes.AttributeValue, out map[string]Known) error {
	req := map[string]ddbtypes.KeysAndAttributes{s.table: {
		Keys:                     keys,
		ProjectionExpression:     aws.String("#pk, #d, #qv, #qu"),
		ExpressionAttributeNames: map[string]string{"#pk": schema.AttrPK, "#d": "decided_version", "#qv": "queued_version", "#qu": "queued_until"},
	}}
	for attempt := 1; ; attempt++ {
		res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return err
		}
		for _, item := range res.Responses[s.table] {
			if sysID, k, ok := knownOf(item); ok {
				out[sysID] = k
			}
		}
		req = res.UnprocessedKeys
		if len(req) == 0 || len(req[s.table].Keys) == 0 {
			return nil
		}
		if attempt == versionsAttempts {
			return fmt.Errorf("%d keys still unprocessed after %d attempts", len(req[s.table].Keys), attempt)
		}
		// Unprocessed keys mean throttling: back off before asking again.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(25<<attempt) * time.Millisecond):
		}
	}
}

// knownOf reads the sys_id, decided version and queued marker of a
// projected ticket item; false when it holds neither.
func knownOf(item map[string]ddbtypes.AttributeValue) (string, Known, bool) {
	pk, ok := item[schema.AttrPK].(*ddbtypes.AttributeValueMemberS)
	if !ok {
		return "", Known{}, false
	}
	k := Known{Decided: -1}
	if v, ok := numberOf(item["decided_version"]); ok {
		k.Decided = int(v)
	}
	if until, ok := numberOf(item["queued_until"]); ok {
		k.QueuedUntil = time.UnixMilli(until)
		v, _ := numberOf(item["queued_version"])
		k.QueuedVersion = int(v)
	}
	if k.Decided < 0 && k.QueuedUntil.IsZero() {
		return "", Known{}, false
	}
	// The sys_id is the last "#"-separated part of the key; gateway ids and
	// table names never contain "#".
	id := pk.Value
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '#' {
			id = id[i+1:]
			break
		}
	}
	return id, k, true
}

func numberOf(av ddbtypes.AttributeValue) (int64, bool) {
	n, ok := av.(*ddbtypes.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	return v, err == nil
}
