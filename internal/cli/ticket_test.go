package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/state"
)

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
