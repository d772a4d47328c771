package budget

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/snowgate/snowgate/internal/schema"
)

// Item attribute names. Times are epoch milliseconds (numbers compare
// correctly in condition expressions).
const (
	attrGatewayID   = "gateway_id"
	attrFullAt      = "full_at"       // when the bucket is full again
	attrInterval    = "interval_ms"   // the bucket full_at counts in: ms per token
	attrBurst       = "burst"         // and its size
	attrLearned     = "learned_limit" // the instance's X-RateLimit-Limit
	attrLearnedAt   = "learned_at"
	attrPausedUntil = "paused_until"
	attrPauseCause  = "pause_cause"
	attrPauseReason = "pause_reason"
	attrPausedAt    = "paused_at"
	attrProbe       = "probe_required" // present while the pause waits for a probe
	attrFailures    = "failures"       // consecutive failures counted by Trip
	slotPrefix      = "slot_"          // slot_<i>: the slot's lease end
	leasePrefix     = "lease_"         // lease_<i>: who holds it
)

// record is a decoded budget item.
type record struct {
	exists      bool
	fullAt      int64
	interval    int64
	burst       int
	learned     int
	learnedAt   int64
	pausedUntil int64
	pausedAt    int64
	cause       Cause
	reason      string
	probe       bool
	failures    int
	turnAt      int64         // the last turn Book handed out
	slots       map[int]int64 // slot index → lease end
}

// paused reports whether the record's circuit is open at now (ms).
func (r record) paused(now int64) bool { return r.pausedUntil > now || r.probe }

// owes reports whether the bucket is below full at now (tokens are owed).
func (r record) owes(now int64) bool { return r.fullAt > now }

// sameBucket reports whether full_at is counted in lim's interval and
// burst (an item written before it recorded them counts as the same).
func (r record) sameBucket(lim limits) bool {
	return r.interval == 0 || r.interval == lim.interval && r.burst == lim.burst
}

// liveSlots counts slots whose lease has not ended at now.
func (r record) liveSlots(now int64) int {
	n := 0
	for _, until := range r.slots {
		if until > now {
			n++
		}
	}
	return n
}

// freeSlots lists the slot indexes below ceiling that are free at now.
func (r record) freeSlots(now int64, ceiling int) []int {
	var free []int
	for i := range ceiling {
		if until, ok := r.slots[i]; !ok || until <= now {
			free = append(free, i)
		}
	}
	return free
}

// earliestSlotEnd is the first lease end among live slots, 0 if none.
func (r record) earliestSlotEnd(now int64) int64 {
	var first int64
	for _, until := range r.slots {
		if until > now && (first == 0 || until < first) {
			first = until
		}
	}
	return first
}

func decode(item map[string]ddbtypes.AttributeValue) (record, error) {
	r := record{exists: item != nil, slots: map[int]int64{}}
	for name, v := range item {
		var err error
		switch {
		case name == attrFullAt:
			r.fullAt, err = num(v)
		case name == attrInterval:
			r.interval, err = num(v)
		case name == attrBurst:
			var n int64
			n, err = num(v)
			r.burst = int(n)
		case name == attrLearned:
			var n int64
			n, err = num(v)
			r.learned = int(n)
		case name == attrLearnedAt:
			r.learnedAt, err = num(v)
		case name == attrPausedUntil:
			r.pausedUntil, err = num(v)
		case name == attrPausedAt:
			r.pausedAt, err = num(v)
		case name == attrPauseCause:
			r.cause = Cause(text(v))
		case name == attrPauseReason:
			r.reason = text(v)
		case name == attrProbe:
			r.probe = true
		case name == attrTurnAt:
			r.turnAt, err = num(v)
		case name == attrFailures:
			var n int64
			n, err = num(v)
			r.failures = int(n)
		case strings.HasPrefix(name, slotPrefix):
			var i int
			if i, err = strconv.Atoi(name[len(slotPrefix):]); err == nil {
				r.slots[i], err = num(v)
			}
		}
		if err != nil {
			return record{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	return r, nil
}

func num(v ddbtypes.AttributeValue) (int64, error) {
	n, ok := v.(*ddbtypes.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("not a number")
	}
	// Emulators may write an integral result of arithmetic as a decimal.
	if i, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(n.Value, 64)
	if err != nil {
		return 0, err
	}
	return int64(f), nil
}

func text(v ddbtypes.AttributeValue) string {
	if s, ok := v.(*ddbtypes.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func nv(n int64) ddbtypes.AttributeValue {
	return &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func sv(s string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: s} }

func key(gatewayID string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{schema.AttrPK: sv(Key(gatewayID))}
}

// update builds one conditional UpdateItem on a budget item.
type update struct {
	set, remove, cond []string
	names             map[string]string
	values            map[string]ddbtypes.AttributeValue
}

// ItemTTL is how long a budget item outlives the last write to it: the
// table's TTL deletes the item of a gateway that was deleted (or has made
// no request for that long), and a gateway that calls again starts with a
// full bucket and learns its instance's limit anew. Every pause is shorter
// (MaxPause), so no live pause is ever lost to it.
const ItemTTL = 30 * 24 * time.Hour

// newUpdate starts a write of the gateway's item; every write renews the
// item's TTL.
func (b *Budget) newUpdate(gatewayID string) *update {
	u := &update{names: map[string]string{}, values: map[string]ddbtypes.AttributeValue{}}
	u.set = append(u.set, u.n(schema.AttrKind)+" = "+u.v("kind", sv(Kind)), u.n(attrGatewayID)+" = "+u.v("gw", sv(gatewayID)),
		u.n(schema.AttrExpiresAt)+" = "+u.v("ttl", nv(b.now().Add(ItemTTL).Unix())))
	return u
}

// n returns the placeholder of an attribute name.
func (u *update) n(attr string) string {
	p := "#" + strings.ReplaceAll(attr, "_", "")
	u.names[p] = attr
	return p
}

// v returns the placeholder of a named value.
func (u *update) v(name string, val ddbtypes.AttributeValue) string {
	p := ":" + name
	u.values[p] = val
	return p
}

func (u *update) input(table, gatewayID string) *dynamodb.UpdateItemInput {
	expr := "SET " + strings.Join(u.set, ", ")
	if len(u.remove) > 0 {
		expr += " REMOVE " + strings.Join(u.remove, ", ")
	}
	in := &dynamodb.UpdateItemInput{
		TableName:                           aws.String(table),
		Key:                                 key(gatewayID),
		UpdateExpression:                    aws.String(expr),
		ExpressionAttributeNames:            u.names,
		ExpressionAttributeValues:           u.values,
		ReturnValues:                        ddbtypes.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: ddbtypes.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if len(u.cond) > 0 {
		in.ConditionExpression = aws.String("(" + strings.Join(u.cond, ") AND (") + ")")
	}
	return in
}

// write runs u. It returns the item after the write and ok, or, when the
// condition failed, the item as it is (from the failure where DynamoDB
// sends it, else read) and !ok.
func (b *Budget) write(ctx context.Context, gatewayID string, u *update) (record, bool, error) {
	out, err := b.db.UpdateItem(ctx, u.input(b.table, gatewayID))
	var ccf *ddbtypes.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		var cur record
		if ccf.Item != nil {
			cur, err = decode(ccf.Item)
		} else {
			cur, err = b.read(ctx, gatewayID)
		}
		if err != nil {
			return record{}, false, err
		}
		b.remember(gatewayID, cur)
		return cur, false, nil
	case err != nil:
		return record{}, false, fmt.Errorf("update budget %s: %w", gatewayID, err)
	}
	r, err := decode(out.Attributes)
	if err != nil {
		return record{}, false, fmt.Errorf("decode budget %s: %w", gatewayID, err)
	}
	b.remember(gatewayID, r)
	return r, true, nil
}

// read returns the budget item, strongly consistent; a missing item is a
// zero record (a full bucket, no pause, no slots).
func (b *Budget) read(ctx context.Context, gatewayID string) (record, error) {
	out, err := b.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(b.table),
		Key:            key(gatewayID),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return record{}, fmt.Errorf("get budget %s: %w", gatewayID, err)
	}
	r, err := decode(out.Item)
	if err != nil {
		return record{}, fmt.Errorf("decode budget %s: %w", gatewayID, err)
	}
	b.remember(gatewayID, r)
	return r, nil
}

// msTime is the UTC time of epoch milliseconds.
func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
