// Package watermark keeps the reconciler's progress per gateway × table on
// the state table: the (sys_updated_on, sys_id) of the last ServiceNow record
// whose changes were enqueued, and when a run last read every change there
// was.
//
// Both values only move forward. Every write is a conditional update, so two
// overlapping reconciler runs (a slow run still paging when the next one
// starts, or a CLI backfill) can never move a watermark backwards: the later
// writer of an older position gets ErrBehind and leaves the item alone.
package watermark

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/snowgate/snowgate/internal/schema"
)

// Kind is the value of the "kind" attribute of watermark items.
const Kind = "WATERMARK"

const keyPrefix = "WATERMARK#"

// TimeLayout is how ServiceNow writes sys_updated_on (UTC). The layout sorts
// lexicographically in time order, which the conditional update relies on.
const TimeLayout = "2006-01-02 15:04:05"

var (
	// ErrNotFound: no run has recorded a watermark for this gateway × table yet.
	ErrNotFound = errors.New("watermark not found")
	// ErrBehind: the stored watermark is already at or past the one offered;
	// nothing was written. Overlapping runs see it routinely; it is not a failure.
	ErrBehind = errors.New("watermark already at or past this position")
)

// Item attribute names.
const (
	attrGatewayID = "gateway_id"
	attrTable     = "table_name"
	attrUpdatedOn = "updated_on"
	attrSysID     = "sys_id"
	attrPosition  = "position"
	attrSyncedAt  = "synced_at"
	attrUpdatedAt = "updated_at"
)

// Key is the state table partition key of a watermark item.
func Key(gatewayID, table string) string { return keyPrefix + gatewayID + "#" + table }

// Position is a place in the (sys_updated_on, sys_id) order the reconciler
// reads records in.
type Position struct {
	// UpdatedOn is the record's sys_updated_on, UTC, whole seconds.
	UpdatedOn time.Time
	SysID     string
}

// IsZero reports whether p is the zero position (before every record).
func (p Position) IsZero() bool { return p.UpdatedOn.IsZero() && p.SysID == "" }

// Compare orders positions: -1 if p is before q, 0 if equal, +1 if after.
func (p Position) Compare(q Position) int {
	if c := p.UpdatedOn.Compare(q.UpdatedOn); c != 0 {
		return c
	}
	switch {
	case p.SysID < q.SysID:
		return -1
	case p.SysID > q.SysID:
		return 1
	}
	return 0
}

// String is the sortable form stored in the item: "2006-01-02 15:04:05#sys_id".
// Its byte order is the position order (fixed-width time, then sys_id), so
// DynamoDB can compare positions in a condition expression.
func (p Position) String() string {
	return p.UpdatedOn.UTC().Format(TimeLayout) + "#" + p.SysID
}

// Mark is the stored watermark of one gateway × table.
type Mark struct {
	GatewayID string
	Table     string
	// Position is the last record whose changes were enqueued; zero until a
	// run enqueued a full page.
	Position Position
	// SyncedAt is when (on our clock) the latest run that read to the end of
	// the changes started; zero if none did yet. The reconciler's lag is
	// measured from it, so a quiet table is not reported as lagging.
	SyncedAt time.Time
	// UpdatedAt is the time of the last write.
	UpdatedAt time.Time
}

// Store reads and writes watermark items on the state table.
type Store struct {
	db    *dynamodb.Client
	table string
	now   func() time.Time
}

// New returns a Store over the named state table.
func New(db *dynamodb.Client, table string) *Store {
	return &Store{db: db, table: table, now: time.Now}
}

// Get returns the watermark of a gateway × table (strongly consistent), or
// ErrNotFound.
func (s *Store) Get(ctx context.Context, gatewayID, table string) (Mark, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            key(gatewayID, table),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Mark{}, fmt.Errorf("get watermark %s/%s: %w", gatewayID, table, err)
	}
	if out.Item == nil {
		return Mark{}, ErrNotFound
	}
	m, err := decode(out.Item)
	if err != nil {
		return Mark{}, fmt.Errorf("decode watermark %s/%s: %w", gatewayID, table, err)
	}
	return m, nil
}

// Advance moves the position forward to p. If the stored position is at or
// past p it writes nothing and returns ErrBehind.
func (s *Store) Advance(ctx context.Context, gatewayID, table string, p Position) error {
	if p.IsZero() {
		return fmt.Errorf("advance watermark %s/%s: zero position", gatewayID, table)
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.table),
		Key:       key(gatewayID, table),
		UpdateExpression: aws.String("SET #kind = :kind, #gw = :gw, #tbl = :tbl, #pos = :pos, " +
			"#on = :on, #sid = :sid, #upd = :upd"),
		ConditionExpression: aws.String("attribute_not_exists(#pos) OR #pos < :pos"),
		ExpressionAttributeNames: map[string]string{
			"#kind": schema.AttrKind, "#gw": attrGatewayID, "#tbl": attrTable, "#pos": attrPosition,
			"#on": attrUpdatedOn, "#sid": attrSysID, "#upd": attrUpdatedAt,
		},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":kind": str(Kind),
			":gw":   str(gatewayID),
			":tbl":  str(table),
			":pos":  str(p.String()),
			":on":   str(p.UpdatedOn.UTC().Format(TimeLayout)),
			":sid":  str(p.SysID),
			":upd":  str(s.now().UTC().Format(time.RFC3339Nano)),
		},
	})
	if err != nil {
		return conditional(fmt.Sprintf("advance watermark %s/%s to %s", gatewayID, table, p), err)
	}
	return nil
}

// MarkSynced records that a run which started at `at` read every change
// there was. If a later time is already stored it writes nothing and returns
// ErrBehind.
func (s *Store) MarkSynced(ctx context.Context, gatewayID, table string, at time.Time) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.table),
		Key:                 key(gatewayID, table),
		UpdateExpression:    aws.String("SET #kind = :kind, #gw = :gw, #tbl = :tbl, #sync = :sync, #upd = :upd"),
		ConditionExpression: aws.String("attribute_not_exists(#sync) OR #sync < :sync"),
		ExpressionAttributeNames: map[string]string{
			"#kind": schema.AttrKind, "#gw": attrGatewayID, "#tbl": attrTable,
			"#sync": attrSyncedAt, "#upd": attrUpdatedAt,
		},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":kind": str(Kind),
			":gw":   str(gatewayID),
			":tbl":  str(table),
			// Epoch milliseconds: a number compares correctly in the condition.
			":sync": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(at.UnixMilli(), 10)},
			":upd":  str(s.now().UTC().Format(time.RFC3339Nano)),
		},
	})
	if err != nil {
		return conditional(fmt.Sprintf("mark watermark %s/%s synced at %s", gatewayID, table, at.UTC().Format(time.RFC3339)), err)
	}
	return nil
}

func conditional(op string, err error) error {
	var ccf *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ErrBehind
	}
	return fmt.Errorf("%s: %w", op, err)
}

func key(gatewayID, table string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{schema.AttrPK: str(Key(gatewayID, table))}
}

func str(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }

func decode(item map[string]ddbtypes.AttributeValue) (Mark, error) {
	get := func(name string) string {
		if v, ok := item[name].(*ddbtypes.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	m := Mark{GatewayID: get(attrGatewayID), Table: get(attrTable)}
	if on := get(attrUpdatedOn); on != "" {
		t, err := time.Parse(TimeLayout, on)
		if err != nil {
			return Mark{}, fmt.Errorf("%s %q: %w", attrUpdatedOn, on, err)
		}
		m.Position = Position{UpdatedOn: t, SysID: get(attrSysID)}
	}
	if v, ok := item[attrSyncedAt].(*ddbtypes.AttributeValueMemberN); ok {
		ms, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return Mark{}, fmt.Errorf("%s %q: %w", attrSyncedAt, v.Value, err)
		}
		m.SyncedAt = time.UnixMilli(ms).UTC()
	}
	if upd := get(attrUpdatedAt); upd != "" {
		t, err := time.Parse(time.RFC3339Nano, upd)
		if err != nil {
			return Mark{}, fmt.Errorf("%s %q: %w", attrUpdatedAt, upd, err)
		}
		m.UpdatedAt = t
	}
	return m, nil
}
