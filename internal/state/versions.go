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

// Versions returns the last sys_mod_count the state table holds for each
// of the given records of a gateway's table; records it knows nothing
// about (or only a failure before any version was claimed) are absent.
// The reconciler uses it to skip records already processed, so it reads
// only the key and the version, eventually consistent: a stale answer
// costs one duplicate intake message, which the processor's claim rejects.
func (s *Store) Versions(ctx context.Context, gatewayID, table string, sysIDs []string) (map[string]int, error) {
	out := make(map[string]int, len(sysIDs))
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

func (s *Store) versionsChunk(ctx context.Context, keys []map[string]ddbtypes.AttributeValue, out map[string]int) error {
	req := map[string]ddbtypes.KeysAndAttributes{s.table: {
		Keys:                     keys,
		ProjectionExpression:     aws.String("#pk, #v, #h"),
		ExpressionAttributeNames: map[string]string{"#pk": schema.AttrPK, "#v": "sys_mod_count", "#h": "content_hash"},
	}}
	for attempt := 1; ; attempt++ {
		res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return err
		}
		for _, item := range res.Responses[s.table] {
			sysID, v, ok := versionOf(item)
			if ok {
				out[sysID] = v
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

// versionOf reads the sys_id and version of a projected ticket item. The
// version counts only once a claim wrote a content hash (see Ticket).
func versionOf(item map[string]ddbtypes.AttributeValue) (string, int, bool) {
	pk, ok := item[schema.AttrPK].(*ddbtypes.AttributeValueMemberS)
	if !ok {
		return "", 0, false
	}
	if h, ok := item["content_hash"].(*ddbtypes.AttributeValueMemberS); !ok || h.Value == "" {
		return "", 0, false
	}
	n, ok := item["sys_mod_count"].(*ddbtypes.AttributeValueMemberN)
	if !ok {
		return "", 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		return "", 0, false
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
	return id, v, true
}
