package replay_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/ingest/replay"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// TestRemember runs on the emulator's state table: a message is new once
// per window and per webhook, a repeat is reported as such, an expired
// marker (which DynamoDB may not have deleted yet) no longer counts, and a
// forgotten one is new again.
func TestRemember(t *testing.T) {
	ctx := context.Background()
	s := replay.New(dynamodb.NewFromConfig(awstest.Config(t)), awstest.Resources(t).StateTable)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	window := 15 * time.Minute
	steps := []struct {
		name    string
		webhook string
		id      string
		at      time.Time
		forget  bool // forget the marker first
		want    bool
	}{
		{"first", "whk_1", "msg_1", t0, false, true},
		{"repeat at once", "whk_1", "msg_1", t0, false, false},
		{"repeat at the end of the window", "whk_1", "msg_1", t0.Add(window - time.Second), false, false},
		{"same id, other webhook", "whk_2", "msg_1", t0, false, true},
		{"other id", "whk_1", "msg_2", t0, false, true},
		{"after the window", "whk_1", "msg_1", t0.Add(window), false, true},
		{"forgotten", "whk_1", "msg_2", t0, true, true},
	}
	for _, st := range steps {
		if st.forget {
			if err := s.Forget(ctx, st.webhook, st.id, st.at); err != nil {
				t.Fatalf("%s: Forget: %v", st.name, err)
			}
		}
		got, err := s.Remember(ctx, st.webhook, st.id, st.at, st.at.Add(window))
		if err != nil {
			t.Fatalf("%s: Remember: %v", st.name, err)
		}
		if got != st.want {
			t.Errorf("%s: Remember(%s, %s) = %v, want %v", st.name, st.webhook, st.id, got, st.want)
		}
	}
}

func TestRememberStoreFailure(t *testing.T) {
	s := replay.New(dynamodb.NewFromConfig(awstest.Config(t)), awstest.Resources(t).StateTable+"-missing")
	now := time.Now()
	if first, err := s.Remember(context.Background(), "whk_1", "msg_1", now, now.Add(time.Minute)); err == nil || first {
		t.Errorf("Remember on a missing table = %v, %v; want an error and not first", first, err)
	}
}
