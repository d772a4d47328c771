package localrun

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/demoengine"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

func jobWith(id, st string, types ...string) *state.Job {
	j := &state.Job{ID: id, State: st, Episode: 1}
	for i, typ := range types {
		j.Events = append(j.Events, state.JobEventRecord{Type: typ, Sequence: i + 1, EventID: "e" + typ})
	}
	return j
}

func TestCheckDecision(t *testing.T) {
	records := map[string]record{"checkout": {SysID: "s-primary", Number: "INC1"}}
	created := demoStep{expect: state.StatusAccepted, job: jobCreated}
	updated := demoStep{job: jobUpdated}
	dup := demoStep{expect: state.StatusDeduplicated, dupOf: "checkout"}
	tests := []struct {
		name      string
		step      demoStep
		ticket    state.Ticket
		jobBefore string
		want      string
		ok        bool
	}{
		{"accepted with its job", created,
			state.Ticket{Status: state.StatusAccepted, Job: jobWith("j1", state.JobOpen, queue.EventJobCreated)}, "",
			"accepted, job j1 created", true},
		{"accepted without a job", created, state.Ticket{Status: state.StatusAccepted}, "", "accepted, no job", false},
		{"job without its job.created", created,
			state.Ticket{Status: state.StatusAccepted, Job: jobWith("j1", state.JobOpen)}, "", "accepted, job j1 without its job.created", false},
		{"out of scope", created,
			state.Ticket{Status: state.StatusOutOfScope}, "", "out_of_scope, no job", false},
		{"update on the same job", updated,
			state.Ticket{Status: state.StatusAccepted, Job: jobWith("j1", state.JobOpen, queue.EventJobCreated, queue.EventJobUpdated)}, "j1",
			"job j1: job.created, then job.updated", true},
		{"update made a second job", updated,
			state.Ticket{Status: state.StatusAccepted, Job: jobWith("j2", state.JobOpen, queue.EventJobCreated)}, "j1",
			"a second job j2 (the first was j1)", false},
		{"update dispatched twice", updated,
			state.Ticket{Job: jobWith("j1", state.JobOpen, queue.EventJobCreated, queue.EventJobUpdated, queue.EventJobUpdated)}, "j1",
			"job j1 with 1 job.created and 2 job.updated", false},
		{"update not dispatched", updated,
			state.Ticket{Job: jobWith("j1", state.JobOpen, queue.EventJobCreated)}, "j1",
			"job j1 with 1 job.created and 0 job.updated", false},
		{"duplicate of the primary", dup,
			state.Ticket{Status: state.StatusDeduplicated, DuplicateOf: "s-primary", DuplicateOfNumber: "INC1"}, "",
			"deduplicated as a duplicate of INC1", true},
		{"duplicate of another", dup,
			state.Ticket{Status: state.StatusDeduplicated, DuplicateOf: "s-other", DuplicateOfNumber: "INC0"}, "",
			"deduplicated as a duplicate of INC0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := checkDecision(tt.step, tt.ticket, records, tt.jobBefore)
			if got != tt.want || ok != tt.ok {
				t.Errorf("checkDecision = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestJudgeOutcome(t *testing.T) {
	gw := registry.Gateway{EscalationGroup: "Service Desk", EscalationGroupID: snowsim.DemoGroupServiceDesk}
	failNote := map[string]string{"value": demoengine.NotePrefix + "job j1 failed (the short description asks for it)"}
	tests := []struct {
		name   string
		o      demoOutcome
		job    *state.Job
		fields map[string]string
		notes  []map[string]string
		gw     registry.Gateway
		done   bool
		want   string // a part of what it says
	}{
		{"resolved", outcomeResolved, jobWith("j1", state.JobSucceeded), map[string]string{"state": "6", "close_notes": "fixed"}, nil, gw, true, "close notes"},
		{"resolved without close notes", outcomeResolved, jobWith("j1", state.JobSucceeded), map[string]string{"state": "6"}, nil, gw, false, "without close notes"},
		{"job still open", outcomeResolved, jobWith("j1", state.JobOpen), map[string]string{"state": "2"}, nil, gw, false, "job open"},
		{"record not resolved", outcomeResolved, jobWith("j1", state.JobSucceeded), map[string]string{"state": "2", "close_notes": "x"}, nil, gw, false, "state 2"},
		{"no job", outcomeResolved, nil, map[string]string{"state": "6"}, nil, gw, false, "no job"},
		{"escalated", outcomeEscalated, jobWith("j1", state.JobEscalated),
			map[string]string{"assignment_group": snowsim.DemoGroupServiceDesk}, []map[string]string{{"value": "ack"}, failNote}, gw, true, "Service Desk"},
		{"escalated, note framed by the writer", outcomeEscalated, jobWith("j1", state.JobEscalated),
			map[string]string{"assignment_group": snowsim.DemoGroupServiceDesk},
			[]map[string]string{{"value": "[code]" + failNote["value"] + "[/code]"}}, gw, true, "work note"},
		{"escalated without the note", outcomeEscalated, jobWith("j1", state.JobEscalated),
			map[string]string{"assignment_group": snowsim.DemoGroupServiceDesk}, []map[string]string{{"value": "ack"}}, gw, false, "no work note"},
		{"note of another job", outcomeEscalated, jobWith("j2", state.JobEscalated),
			map[string]string{"assignment_group": snowsim.DemoGroupServiceDesk}, []map[string]string{failNote}, gw, false, "no work note"},
		{"not reassigned", outcomeEscalated, jobWith("j1", state.JobEscalated),
			map[string]string{"assignment_group": snowsim.DemoGroupNetwork}, []map[string]string{failNote}, gw, false, snowsim.DemoGroupNetwork},
		{"failed, not escalated", outcomeEscalated, jobWith("j1", state.JobFailed),
			map[string]string{"assignment_group": snowsim.DemoGroupServiceDesk}, []map[string]string{failNote}, gw, false, "job failed"},
		{"gateway without a group", outcomeEscalated, jobWith("j1", state.JobEscalated),
			map[string]string{}, []map[string]string{failNote}, registry.Gateway{}, false, "assignment group none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, done := judgeOutcome(tt.o, tt.job, tt.fields, tt.notes, tt.gw)
			if done != tt.done || !strings.Contains(got, tt.want) {
				t.Errorf("judgeOutcome = %q, %v; want %v and %q in it", got, done, tt.done, tt.want)
			}
		})
	}
}

// The demo reads what the writer wrote the way it would be written: a
// record's fields (references as sys_ids) and its work notes in
// sys_journal_field, from make dev's simulator.
func TestDemoReadsRecordsAndWorkNotes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sim, err := demoSim("admin", "pw")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c := &tableClient{base: srv.URL, user: "admin", pass: "pw"}
	rec, err := c.create(ctx, registry.TableIncident, map[string]string{"short_description": "x", "assignment_group": snowsim.DemoGroupNetwork})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.update(ctx, registry.TableIncident, rec.SysID, map[string]string{
		"state": "6", "close_code": "Solution provided", "close_notes": "fixed it",
		"assignment_group": snowsim.DemoGroupServiceDesk, "work_notes": demoengine.NotePrefix + "job j1 failed",
	}); err != nil {
		t.Fatal(err)
	}
	fields, err := c.get(ctx, registry.TableIncident, rec.SysID)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"state": "6", "close_notes": "fixed it", "assignment_group": snowsim.DemoGroupServiceDesk} {
		if fields[k] != want {
			t.Errorf("get: %s = %q, want %q", k, fields[k], want)
		}
	}
	notes, err := c.list(ctx, snowsim.TableJournal, "element_id="+rec.SysID+"^element=work_notes")
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || notes[0]["value"] != demoengine.NotePrefix+"job j1 failed" {
		t.Errorf("work notes = %v, want the one written", notes)
	}
}

// The steps hang together: what a step refers to exists, the records
// whose results are awaited get a job, the failing one carries the fail
// marker, and the change moved on is held open so its job is still open.
func TestDemoSteps(t *testing.T) {
	steps := demoSteps("t", time.Now())
	labels := map[string]demoStep{}
	outcomes := map[demoOutcome]int{}
	for _, s := range steps {
		if s.update != "" {
			if _, ok := labels[s.update]; !ok {
				t.Errorf("step %q updates %q, made by no earlier step", s.what, s.update)
			}
			if s.job == jobUpdated && !strings.Contains(labels[s.update].fields["short_description"], demoengine.MarkerHold) {
				t.Errorf("step %q expects the job still open, but %q is not held open", s.what, s.update)
			}
		} else {
			labels[s.label] = s
		}
		if s.dupOf != "" {
			if _, ok := labels[s.dupOf]; !ok {
				t.Errorf("step %q is a duplicate of %q, made by no earlier step", s.what, s.dupOf)
			}
		}
		if s.outcome != "" {
			outcomes[s.outcome]++
			if s.job != jobCreated {
				t.Errorf("step %q awaits a result without a job", s.what)
			}
		}
		failing := strings.Contains(s.fields["short_description"], demoengine.MarkerFail)
		if failing != (s.outcome == outcomeEscalated) {
			t.Errorf("step %q: fail marker %v, outcome %q", s.what, failing, s.outcome)
		}
	}
	if outcomes[outcomeResolved] != 1 || outcomes[outcomeEscalated] != 1 {
		t.Errorf("outcomes = %v, want one resolved and one escalated", outcomes)
	}
}
