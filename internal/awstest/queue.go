package awstest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Drain receives and deletes every message on a queue, with all message
// attributes, until two receives in a row come back empty, and returns the
// messages in the order received. Tests use it to assert on exactly what a
// queue holds.
func Drain(t testing.TB, client *sqs.Client, url string) []sqstypes.Message {
	t.Helper()
	ctx := context.Background()
	var msgs []sqstypes.Message
	for empty := 0; empty < 2; {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:              aws.String(url),
			MaxNumberOfMessages:   10,
			MessageAttributeNames: []string{"All"},
			VisibilityTimeout:     60,
		})
		if err != nil {
			t.Fatalf("receive from %s: %v", url, err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			msgs = append(msgs, m)
			if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete from %s: %v", url, err)
			}
		}
	}
	return msgs
}

// DrainJSON drains a queue and decodes every body as a T.
func DrainJSON[T any](t testing.TB, client *sqs.Client, url string) []T {
	t.Helper()
	var out []T
	for _, m := range Drain(t, client, url) {
		var v T
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &v); err != nil {
			t.Fatalf("message body %q from %s: %v", aws.ToString(m.Body), url, err)
		}
		out = append(out, v)
	}
	return out
}
