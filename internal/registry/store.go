package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/snowgate/snowgate/internal/schema"
)

// ErrNotFound is returned for an unknown gateway, webhook or path.
var ErrNotFound = errors.New("not found")

// Store reads and writes the registry table.
type Store struct {
	db    *dynamodb.Client
	table string
}

// New returns a Store over the named registry table.
func New(db *dynamodb.Client, table string) *Store {
	return &Store{db: db, table: table}
}

// Route returns the path item for a webhook path in one GetItem.
// An unknown path is ErrNotFound.
func (s *Store) Route(ctx context.Context, path string) (Route, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table),
		Key:       map[string]ddbtypes.AttributeValue{schema.AttrPK: &ddbtypes.AttributeValueMemberS{Value: PathKey(path)}},
	})
	if err != nil {
		return Route{}, fmt.Errorf("get route: %w", err)
	}
	if out.Item == nil {
		return Route{}, ErrNotFound
	}
	var r Route
	if err := attributevalue.UnmarshalMap(out.Item, &r); err != nil {
		return Route{}, fmt.Errorf("decode route: %w", err)
	}
	return r, nil
}
