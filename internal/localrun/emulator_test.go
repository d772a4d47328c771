package localrun_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/logging"
	"github.com/sivchari/kumo"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/localrun"
)

// sdkLog keeps what the SDK logs.
type sdkLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *sdkLog) Logf(c logging.Classification, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf("%s "+format, append([]any{c}, v...)...))
}

func (l *sdkLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// DynamoDB through make dev's emulator address, as `2501 infra ticket list`
// reads it: queries and scans over several pages of responses larger than
// one TCP segment, and an error answer, leave the SDK nothing to warn about
// (no "response did not match expected checksum" on stderr).
func TestEmulatorDynamoDBWithoutSDKWarnings(t *testing.T) {
	if awstest.Kind() != awstest.Kumo {
		t.Skip("make dev's emulator address fronts kumo")
	}
	k := kumo.NewServer()
	defer k.Close()
	u, err := url.Parse(k.URL)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(localrun.EmulatorProxy(u))
	defer front.Close()

	ctx := context.Background()
	cfg, err := awsconfig.Load(ctx, awsconfig.Options{Endpoint: front.URL, StaticCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	logs := &sdkLog{}
	cfg.Logger = logs
	db := dynamodb.NewFromConfig(cfg)
	table := aws.String(awstest.UniqueName("checksum-"))
	if _, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   table,
		BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: ddbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: ddbtypes.KeyTypeRange},
		},
	}); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	defer func() { _, _ = db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: table}) }()

	const items = 60
	text := strings.Repeat("disk full on db-01, ", 10) + "non-ASCII: é ü ✓"
	for i := range items {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: map[string]ddbtypes.AttributeValue{
			"pk":                &ddbtypes.AttributeValueMemberS{Value: "gtw"},
			"sk":                &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("%03d", i)},
			"short_description": &ddbtypes.AttributeValueMemberS{Value: text},
		}}); err != nil {
			t.Fatalf("PutItem: %v", err)
		}
	}
	var ccf *ddbtypes.ConditionalCheckFailedException
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: map[string]ddbtypes.AttributeValue{
		"pk": &ddbtypes.AttributeValueMemberS{Value: "gtw"}, "sk": &ddbtypes.AttributeValueMemberS{Value: "000"},
	}, ConditionExpression: aws.String("attribute_not_exists(pk)")}); !errors.As(err, &ccf) {
		t.Errorf("conditional PutItem = %v, want ConditionalCheckFailedException", err)
	}

	for _, limit := range []int32{0, 25} {
		q := &dynamodb.QueryInput{
			TableName:                 table,
			KeyConditionExpression:    aws.String("pk = :pk"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":pk": &ddbtypes.AttributeValueMemberS{Value: "gtw"}},
			ScanIndexForward:          aws.Bool(false),
		}
		s := &dynamodb.ScanInput{TableName: table}
		if limit > 0 {
			q.Limit, s.Limit = aws.Int32(limit), aws.Int32(limit)
		}
		n := 0
		for p := dynamodb.NewQueryPaginator(db, q); p.HasMorePages(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("Query (limit %d): %v", limit, err)
			}
			n += len(page.Items)
		}
		if n != items {
			t.Errorf("Query (limit %d) read %d items, want %d", limit, n, items)
		}
		n = 0
		for p := dynamodb.NewScanPaginator(db, s); p.HasMorePages(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("Scan (limit %d): %v", limit, err)
			}
			n += len(page.Items)
		}
		if n != items {
			t.Errorf("Scan (limit %d) read %d items, want %d", limit, n, items)
		}
	}
	if l := logs.all(); len(l) > 0 {
		t.Errorf("SDK logged %d lines, want none; first: %q", len(l), l[0])
	}
}
