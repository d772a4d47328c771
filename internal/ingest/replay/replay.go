// Package replay remembers the Standard Webhooks message ids (webhook-id)
// that ingest accepted, for as long as their timestamps stay acceptable,
// so that a request sent again within that window is known for a repeat:
// a captured request replayed by someone else, or one of the calls
// ServiceNow's ECC queue sends twice with the same headers.
//
// A marker is one item in the state table, "REPLAY#<webhook id>#<message
// id>", written by a conditional PutItem that carries the table's TTL
// attribute (schema.AttrExpiresAt). DynamoDB deletes an expired item only
// eventually, so the condition also lets a write replace a marker that has
// expired but still exists: a marker counts for its window and no longer.
package replay

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

// Key is a marker's partition key. The webhook id scopes the message id:
// ids are unique per sender, not across every sender.
func Key(webhookID, messageID string) string {
	return schema.ReplayKeyPrefix + webhookID + "#" + messageID
}

// Store keeps markers in the state table.
type Store struct {
	db    *dynamodb.Client
	table string
}

// New returns a Store over the named state table.
func New(db *dynamodb.Client, table string) *Store { return &Store{db: db, table: table} }

// Remember records a message of a webhook until expires, in one
// conditional PutItem. It reports whether this is the first time within
// the window (false: a live marker exists, the request is a repeat).
func (s *Store) Remember(ctx context.Context, webhookID, messageID string, now, expires time.Time) (bool, error) {
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table),
		Item: map[string]ddbtypes.AttributeValue{
			schema.AttrPK:        &ddbtypes.AttributeValueMemberS{Value: Key(webhookID, messageID)},
			schema.AttrExpiresAt: epoch(expires),
		},
		ConditionExpression:      aws.String("attribute_not_exists(#pk) OR #exp <= :now"),
		ExpressionAttributeNames: map[string]string{"#pk": schema.AttrPK, "#exp": schema.AttrExpiresAt},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":now": epoch(now),
		},
	})
	var failed *ddbtypes.ConditionalCheckFailedException
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &failed):
		return false, nil
	default:
		return false, fmt.Errorf("remember webhook message: %w", err)
	}
}

// Forget ends a marker at now: a message that was remembered but could
// not be enqueued must not make its resend look like a repeat. It writes
// the marker expired rather than deleting it, so that ingest needs one
// action on the state table (PutItem, on these keys only); TTL removes
// the item later.
func (s *Store) Forget(ctx context.Context, webhookID, messageID string, now time.Time) error {
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table),
		Item: map[string]ddbtypes.AttributeValue{
			schema.AttrPK:        &ddbtypes.AttributeValueMemberS{Value: Key(webhookID, messageID)},
			schema.AttrExpiresAt: epoch(now),
		},
	})
	if err != nil {
		return fmt.Errorf("forget webhook message: %w", err)
	}
	return nil
}

func epoch(t time.Time) ddbtypes.AttributeValue {
	return &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(t.Unix(), 10)}
}
