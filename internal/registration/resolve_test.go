package registration_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/snowsim"
)

const (
	simUser, simPass = "svc", "pa55word"
	groupNetwork     = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"
	groupDatabase    = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa02"
	groupEscalations = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa03"
)

// simFixture is a fixture whose Service resolves filters on a simulated
// instance through the real ServiceNow client.
func simFixture(t *testing.T, opts ...snowsim.Option) (*fixture, *snowsim.Server) {
	t.Helper()
	sim, err := snowsim.Start("127.0.0.1:0", append([]snowsim.Option{snowsim.WithUser(simUser, simPass)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	if err := sim.Sim.Seed(strings.NewReader(`{"sys_user_group": [
		{"sys_id": "` + groupNetwork + `", "name": "Network"},
		{"sys_id": "` + groupDatabase + `", "name": "Database"},
		{"sys_id": "` + groupEscalations + `", "name": "Ops escalations"}]}`)); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.svc = registration.New(f.reg, f.sec, registration.WithSecretPrefix(f.prefix), registration.WithClock(f.clock.Now),
		registration.WithDirectory(registration.ConnectInstance(servicenow.WithMaxAttempts(1))))
	return f, sim
}

func simInput(sim *snowsim.Server) registration.GatewayInput {
	in := basicInput("prod")
	in.InstanceURL = sim.URL
	return in
}

func TestCreateGatewayResolvesFilters(t *testing.T) {
	tests := []struct {
		name             string
		groups, escalate string
		envs             string
		skip             bool
		sim              []snowsim.Option
		wantIDs          []string
		wantEscalation   string
		wantFlag         string // a ValidationError naming it
		wantMessage      string // substring of the error
	}{
		{name: "exact names", groups: "Network, Database", escalate: "Ops escalations",
			wantIDs: []string{groupNetwork, groupDatabase}, wantEscalation: groupEscalations},
		{name: "sys_id of an existing group", groups: groupDatabase, escalate: groupEscalations,
			wantIDs: []string{groupDatabase}, wantEscalation: groupEscalations},
		{name: "case near miss", groups: "network", wantFlag: "--assignment-group-filter", wantMessage: `did you mean "Network"`},
		{name: "spelling near miss", groups: "Netwrok", wantFlag: "--assignment-group-filter", wantMessage: `did you mean "Network"`},
		{name: "escalation near miss", escalate: "ops escalations", wantFlag: "--escalation-group", wantMessage: `did you mean "Ops escalations"`},
		{name: "unknown name", groups: "Network,Storage", wantFlag: "--assignment-group-filter", wantMessage: `no group named "Storage"`},
		{name: "sys_id of no group", groups: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb01", wantFlag: "--assignment-group-filter", wantMessage: "no group named"},
		{name: "environment field exists", groups: "Network", envs: "production", wantIDs: []string{groupNetwork}},
		{name: "environment field missing", envs: "production",
			sim:      []snowsim.Option{snowsim.WithoutField("incident", "u_environment"), snowsim.WithoutField("change_request", "u_environment")},
			wantFlag: "--environment-filter", wantMessage: "u_environment"},
		{name: "skip checks stores what was typed", groups: "network", escalate: "Ops", skip: true,
			sim: []snowsim.Option{snowsim.WithoutField("incident", "u_environment")}, envs: "production"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, sim := simFixture(t, tt.sim...)
			in := simInput(sim)
			in.AssignmentGroupFilter, in.EscalationGroup, in.EnvironmentFilter, in.SkipInstanceChecks = tt.groups, tt.escalate, tt.envs, tt.skip
			before := f.state()
			g, err := f.svc.CreateGateway(context.Background(), in)
			if tt.wantFlag != "" {
				var v *registration.ValidationError
				if !errors.As(err, &v) || v.Flag != tt.wantFlag || !strings.Contains(v.Message, tt.wantMessage) {
					t.Fatalf("CreateGateway = %v, want a ValidationError of %s saying %q", err, tt.wantFlag, tt.wantMessage)
				}
				if diff := cmp.Diff(before, f.state()); diff != "" {
					t.Errorf("a refused gateway changed the registry or secrets (-before +after):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("CreateGateway: %v", err)
			}
			stored, err := f.reg.Gateway(context.Background(), g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.AssignmentGroupFilter != tt.groups || stored.EscalationGroup != tt.escalate {
				t.Errorf("stored filter %q, escalation %q; want them as typed (%q, %q)", stored.AssignmentGroupFilter, stored.EscalationGroup, tt.groups, tt.escalate)
			}
			if diff := cmp.Diff(tt.wantIDs, stored.AssignmentGroupIDs); diff != "" {
				t.Errorf("AssignmentGroupIDs (-want +got):\n%s", diff)
			}
			if stored.EscalationGroupID != tt.wantEscalation {
				t.Errorf("EscalationGroupID = %q, want %q", stored.EscalationGroupID, tt.wantEscalation)
			}
		})
	}
}

func TestCreateGatewayInstanceUnreachable(t *testing.T) {
	f, sim := simFixture(t)
	in := simInput(sim)
	sim.Close()
	in.AssignmentGroupFilter = "Network"
	before := f.state()
	_, err := f.svc.CreateGateway(context.Background(), in)
	if err == nil || !strings.Contains(err.Error(), "--skip-instance-checks") {
		t.Fatalf("CreateGateway on an unreachable instance = %v, want an error pointing at --skip-instance-checks", err)
	}
	if diff := cmp.Diff(before, f.state()); diff != "" {
		t.Errorf("a refused gateway changed the registry or secrets (-before +after):\n%s", diff)
	}
}

func TestCreateGatewayWithoutDirectory(t *testing.T) {
	f := newFixture(t)
	in := basicInput("prod")
	in.AssignmentGroupFilter = "Network"
	if _, err := f.svc.CreateGateway(context.Background(), in); err == nil {
		t.Fatal("CreateGateway with a group filter and no directory succeeded, want it refused")
	}
	// Without filters there is nothing to resolve.
	if _, err := f.svc.CreateGateway(context.Background(), basicInput("plain")); err != nil {
		t.Errorf("CreateGateway without filters: %v", err)
	}
}

func TestUpdateGatewayResolvesFilters(t *testing.T) {
	f, sim := simFixture(t)
	ctx := context.Background()
	s := func(v string) *string { return &v }
	in := simInput(sim)
	in.AssignmentGroupFilter = "Network"
	g, err := f.svc.CreateGateway(ctx, in)
	if err != nil {
		t.Fatalf("CreateGateway: %v", err)
	}

	_, _, err = f.svc.UpdateGateway(ctx, g.ID, registration.GatewayChanges{AssignmentGroupFilter: s("Network,database")})
	var v *registration.ValidationError
	if !errors.As(err, &v) || v.Flag != "--assignment-group-filter" || !strings.Contains(v.Message, `did you mean "Database"`) {
		t.Fatalf("update to a case near miss = %v, want refused, suggesting Database", err)
	}
	if stored, _ := f.reg.Gateway(ctx, g.ID); stored.AssignmentGroupFilter != "Network" {
		t.Errorf("refused update stored filter %q", stored.AssignmentGroupFilter)
	}

	upd, _, err := f.svc.UpdateGateway(ctx, g.ID, registration.GatewayChanges{AssignmentGroupFilter: s("Database"), EscalationGroup: s("Ops escalations")})
	if err != nil {
		t.Fatalf("UpdateGateway: %v", err)
	}
	if diff := cmp.Diff([]string{groupDatabase}, upd.AssignmentGroupIDs); diff != "" || upd.EscalationGroupID != groupEscalations {
		t.Errorf("updated ids %q, escalation %q; want [%s], %s", upd.AssignmentGroupIDs, upd.EscalationGroupID, groupDatabase, groupEscalations)
	}
	if got, want := upd.ScopeQuery(), "active=true^assignment_groupIN"+groupDatabase; got != want {
		t.Errorf("ScopeQuery() = %q, want %q", got, want)
	}

	// A change that does not touch the filters keeps the sys_ids, and does
	// not need the instance.
	sim.Close()
	upd, _, err = f.svc.UpdateGateway(ctx, g.ID, registration.GatewayChanges{Name: s("production")})
	if err != nil || len(upd.AssignmentGroupIDs) != 1 {
		t.Fatalf("rename = %+v, %v; want the sys_ids kept", upd.AssignmentGroupIDs, err)
	}
	// Offline, the filter is stored as typed and matched by name.
	upd, _, err = f.svc.UpdateGateway(ctx, g.ID, registration.GatewayChanges{AssignmentGroupFilter: s("Network"), SkipInstanceChecks: true})
	if err != nil {
		t.Fatalf("offline update: %v", err)
	}
	if upd.AssignmentGroupIDs != nil || upd.EscalationGroupID != groupEscalations || upd.ScopeQuery() != "active=true^assignment_group.nameINNetwork" {
		t.Errorf("offline update = ids %q, escalation id %q, scope %q; want names only, the unchanged escalation kept", upd.AssignmentGroupIDs, upd.EscalationGroupID, upd.ScopeQuery())
	}
}
