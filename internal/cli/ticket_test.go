package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/state"
)

// putJob gives a stored ticket a job, written into its item as the
// processor and the writer leave it (under "job").
func putJob(t *testing.T, h *harness, k state.Key, j state.Job) {
	t.Helper()
	av, err := attributevalue.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dynamodb.NewFromConfig(h.cfg).UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName:                 aws.String(h.env[schema.EnvStateTable]),
		Key:                       map[string]ddbtypes.AttributeValue{schema.AttrPK: &ddbtypes.AttributeValueMemberS{Value: k.PK()}},
		UpdateExpression:          aws.String("SET #job = :job"),
		ConditionExpression:       aws.String("attribute_exists(#pk)"),
		ExpressionAttributeNames:  map[string]string{"#job": "job", "#pk": schema.AttrPK},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":job": av},
	})
	if err != nil {
		t.Fatalf("put the job of %s: %v", k.PK(), err)
	}
}

// putTicket stores a decided ticket as the processor would.
func putTicket(t *testing.T, s *state.Store, gatewayID, sysID, desc, status string) {
	t.Helper()
	ctx := context.Background()
	c := state.Claim{
		Key:    state.Key{GatewayID: gatewayID, Table: "incident", SysID: sysID},
		Mirror: state.Mirror{Number: "INC" + sysID[:4], ShortDescription: desc, Active: true},
		Token:  "tok", Lease: time.Minute, SysModCount: 2, Source: "webhook",
	}
	if _, err := s.Claim(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, c.Key, c.Token, state.Result{Version: 2, Status: status, Reason: "because"}); err != nil {
		t.Fatal(err)
	}
}

func TestTicketCommands(t *testing.T) {
	h := newHarness(t)
	g1, g2 := h.gateway("one"), h.gateway("two")
	s := state.New(dynamodb.NewFromConfig(h.cfg), h.env[schema.EnvStateTable])
	putTicket(t, s, g1.ID, "1111aaaa", "disk full", state.StatusAccepted)
	putTicket(t, s, g1.ID, "2222bbbb", "old", state.StatusOutOfScope)
	putTicket(t, s, g2.ID, "3333cccc", "vpn", state.StatusAccepted)

	type listed struct {
		SysID string `json:"sys_id"`
	}
	ids := func(ts []listed) []string {
		out := []string{}
		for _, t := range ts {
			out = append(out, t.SysID)
		}
		return out
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "every gateway", args: nil, want: []string{"3333cccc", "2222bbbb", "1111aaaa"}},
		{name: "one gateway", args: []string{"--gateway-id", g1.ID}, want: []string{"2222bbbb", "1111aaaa"}},
		{name: "by status", args: []string{"--status", "accepted"}, want: []string{"3333cccc", "1111aaaa"}},
		{name: "since the future", args: []string{"--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []listed
			h.json(&got, "", append([]string{"infra", "ticket", "list"}, tt.args...)...)
			if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
				t.Errorf("ticket list %v (-want +got):\n%s", tt.args, diff)
			}
		})
	}

	out := h.ok("", "infra", "ticket", "list", "--gateway-id", g1.ID)
	if !strings.Contains(out, "STATUS") || !strings.Contains(out, "out_of_scope") || strings.Contains(out, "3333cccc") {
		t.Errorf("ticket list text:\n%s", out)
	}
	out = h.ok("", "infra", "ticket", "show", "--table", "incident", "--sys-id", "3333cccc")
	for _, want := range []string{"Status:", "accepted", g2.ID, "vpn"} {
		if !strings.Contains(out, want) {
			t.Errorf("ticket show output lacks %q:\n%s", want, out)
		}
	}
	if r := h.run("", "infra", "ticket", "show", "--table", "incident"); r.code != 2 {
		t.Errorf("show without --sys-id: exit %d, want 2", r.code)
	}
	if r := h.run("", "infra", "ticket", "show", "--table", "incident", "--sys-id", "nope"); r.code != 1 || !strings.Contains(r.stderr, "no ticket") {
		t.Errorf("show of an unknown record: exit %d stderr %q, want 1 and no ticket", r.code, r.stderr)
	}
}

func TestTicketJobs(t *testing.T) {
	h := newHarness(t)
	g := h.gateway("one")
	s := state.New(dynamodb.NewFromConfig(h.cfg), h.env[schema.EnvStateTable])
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	key := func(sysID string) state.Key { return state.Key{GatewayID: g.ID, Table: "incident", SysID: sysID} }
	created := func(seq int) state.JobEventRecord {
		return state.JobEventRecord{Type: "job.created", Sequence: seq, EventID: "evt_c" + fmt.Sprint(seq), At: at}
	}
	putTicket(t, s, g.ID, "1111aaaa", "disk full", state.StatusAccepted)
	putJob(t, h, key("1111aaaa"), state.Job{ID: "job_open", State: state.JobOpen, Episode: 1, Sequence: 2, OpenedAt: at,
		Events:  []state.JobEventRecord{created(1), {Type: "job.follow_up", Sequence: 2, EventID: "evt_f2", At: at.Add(time.Minute)}},
		Results: []state.JobResultRecord{{ResultID: "res_p", Status: "in_progress", At: at.Add(30 * time.Second), Applied: "work note"}}})
	putTicket(t, s, g.ID, "2222bbbb", "vpn down", state.StatusAccepted)
	putJob(t, h, key("2222bbbb"), state.Job{ID: "job_esc", State: state.JobEscalated, Episode: 2, Sequence: 1, OpenedAt: at, EndedAt: at.Add(time.Hour),
		Events:  []state.JobEventRecord{created(1)},
		Results: []state.JobResultRecord{{ResultID: "res_f", Status: "failed", At: at.Add(time.Hour), Applied: "work note, escalated"}}})
	putTicket(t, s, g.ID, "3333cccc", "printer", state.StatusAwaitingMention)
	putTicket(t, s, g.ID, "4444dddd", "old", state.StatusOutOfScope)

	t.Run("show json", func(t *testing.T) {
		var got []struct {
			JobID    string          `json:"job_id"`
			JobState string          `json:"job_state"`
			Job      json.RawMessage `json:"job"`
		}
		h.json(&got, "", "infra", "ticket", "show", "--table", "incident", "--sys-id", "1111aaaa")
		if len(got) != 1 {
			t.Fatalf("ticket show printed %d tickets, want 1", len(got))
		}
		want := `{"id":"job_open","state":"open","episode":1,` +
			`"events":[{"type":"job.created","sequence":1,"event_id":"evt_c1","at":"2026-03-01T12:00:00Z"},` +
			`{"type":"job.follow_up","sequence":2,"event_id":"evt_f2","at":"2026-03-01T12:01:00Z"}],` +
			`"results":[{"result_id":"res_p","status":"in_progress","at":"2026-03-01T12:00:30Z"}]}`
		var compact bytes.Buffer
		if err := json.Compact(&compact, got[0].Job); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, compact.String()); diff != "" {
			t.Errorf("ticket show job (-want +got):\n%s", diff)
		}
		if got[0].JobState != state.JobOpen {
			t.Errorf("job_state = %q, want open", got[0].JobState)
		}
	})

	t.Run("show text", func(t *testing.T) {
		out := h.ok("", "infra", "ticket", "show", "--table", "incident", "--sys-id", "2222bbbb")
		for _, want := range []string{"job_esc (escalated, episode 2)", "#1 job.created evt_c1 at 2026-03-01T12:00:00Z", "failed res_f at 2026-03-01T13:00:00Z"} {
			if !strings.Contains(out, want) {
				t.Errorf("ticket show lacks %q:\n%s", want, out)
			}
		}
		out = h.ok("", "infra", "ticket", "show", "--table", "incident", "--sys-id", "3333cccc")
		if !strings.Contains(out, "awaiting_mention") || strings.Contains(out, "Job:") {
			t.Errorf("ticket show of a ticket awaiting a mention (no job):\n%s", out)
		}
	})

	type listed struct {
		SysID    string `json:"sys_id"`
		JobState string `json:"job_state"`
	}
	tests := []struct {
		name string
		args []string
		want []listed
	}{
		{name: "all", want: []listed{{"4444dddd", ""}, {"3333cccc", ""}, {"2222bbbb", "escalated"}, {"1111aaaa", "open"}}},
		{name: "open jobs", args: []string{"--job-state", "open"}, want: []listed{{"1111aaaa", "open"}}},
		{name: "escalated jobs", args: []string{"--job-state", "escalated"}, want: []listed{{"2222bbbb", "escalated"}}},
		{name: "no cancelled job", args: []string{"--job-state", "cancelled"}, want: []listed{}},
		{name: "awaiting a mention", args: []string{"--status", "awaiting_mention"}, want: []listed{{"3333cccc", ""}}},
		{name: "accepted with an open job", args: []string{"--status", "accepted", "--job-state", "open"}, want: []listed{{"1111aaaa", "open"}}},
	}
	for _, tt := range tests {
		t.Run("list "+tt.name, func(t *testing.T) {
			var got []listed
			h.json(&got, "", append([]string{"infra", "ticket", "list"}, tt.args...)...)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ticket list %v (-want +got):\n%s", tt.args, diff)
			}
		})
	}

	t.Run("list text", func(t *testing.T) {
		out := h.ok("", "infra", "ticket", "list")
		lines := strings.Split(out, "\n")
		if !strings.Contains(lines[0], "STATUS") || !strings.Contains(lines[0], "JOB") {
			t.Fatalf("ticket list header lacks a JOB column:\n%s", out)
		}
		for _, want := range [][]string{{"1111aaaa", "accepted", "open"}, {"2222bbbb", "accepted", "escalated"}, {"3333cccc", "awaiting_mention", "-"}} {
			found := false
			for _, l := range lines {
				if f := strings.Fields(l); len(f) > 6 && f[3] == want[0] && f[5] == want[1] && f[6] == want[2] {
					found = true
				}
			}
			if !found {
				t.Errorf("ticket list has no row %v (sys_id, status, job):\n%s", want, out)
			}
		}
	})

	for _, tc := range []struct{ flag, value, want string }{
		{"--job-state", "closed", `--job-state "closed": want one of open, succeeded, failed, partial, escalated, cancelled`},
		{"--status", "awaiting", `--status "awaiting": want one of accepted, awaiting_mention,`},
	} {
		r := h.run("", "infra", "ticket", "list", tc.flag, tc.value)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("ticket list %s %s: exit %d, %q; want 2 and %q", tc.flag, tc.value, r.code, r.stderr, tc.want)
		}
	}
}
