package contract_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/contract"
	"github.com/snowgate/snowgate/internal/queue"
)

const (
	gatewayID = "gtw_0b1f6a3c-7d2e-4f58-9a1b-2c3d4e5f6a7b"
	webhookID = "whk_5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
	sysID     = "4b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
	entryID   = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
)

var occurred = time.Date(2026, 3, 10, 12, 0, 5, 0, time.UTC)

// event builds a job event as the processor does: every required field
// set, the optional ones of its type filled in.
func event(typ string) queue.JobEvent {
	e := queue.JobEvent{
		Type: typ, SchemaVersion: queue.EventSchemaVersion,
		EventID: queue.EventIDFor(gatewayID, "incident", sysID, 1, 3, typ, ""),
		JobID:   "job_7c1d9e2a", Sequence: 1, Episode: 1,
		GatewayID: gatewayID, GatewayName: "prod", Org: "acme", WebhookID: webhookID,
		Table: "incident", SysID: sysID, Number: "INC0010001", SysModCount: 3,
		Source: queue.SourceWebhook, RequestID: "req-1", OccurredAt: occurred,
		EscalationGroup: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa03",
		Ticket: queue.JobTicket{
			Number: "INC0010001", State: "2", Priority: "2", ShortDescription: "Router down in DC1",
			Description: "BGP session flaps", AssignmentGroup: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01",
			AssignmentGroupName: "Network", Environment: "production", ConfigurationItem: "ci-router-1",
			Active: true, SysUpdatedOn: "2026-03-10 12:00:04",
		},
	}
	switch typ {
	case queue.EventJobCreated:
		e.Reason = queue.ReasonNewRecord
	case queue.EventJobUpdated:
		e.Sequence, e.ChangedFields = 2, []string{"priority", "description"}
	case queue.EventJobFollowUp:
		e.Sequence, e.Message = 3, &queue.JournalMessage{Field: "comments", Text: "@2501 please retry", Author: "jane.doe",
			EnteredAt: occurred.Add(-time.Second), EntryID: entryID}
		e.EventID = queue.EventIDFor(gatewayID, "incident", sysID, 1, 3, typ, entryID)
	case queue.EventJobCancelled:
		e.Sequence, e.Reason = 4, "closed"
		e.Ticket.State, e.Ticket.Active = "7", false
	}
	return e
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidEvents(t *testing.T) {
	changeRequest := event(queue.EventJobCreated)
	changeRequest.Table, changeRequest.Number, changeRequest.Reason = "change_request", "CHG0030001", queue.ReasonWindowOpened
	changeRequest.Source = queue.SourceDeferred
	changeRequest.Ticket = queue.JobTicket{Number: "CHG0030001", State: "-2", ShortDescription: "Patch routers", Active: true,
		SysUpdatedOn: "2026-03-10 11:00:00", Type: "normal", Approval: "approved",
		StartDate: "2026-03-10 12:00:00", EndDate: "2026-03-10 14:00:00"}

	minimal := queue.JobEvent{Type: queue.EventJobCreated, SchemaVersion: queue.EventSchemaVersion,
		EventID: queue.EventIDFor(gatewayID, "incident", sysID, 1, 0, queue.EventJobCreated, ""),
		JobID:   "j", Sequence: 1, Episode: 1, GatewayID: gatewayID, Table: "incident", SysID: sysID,
		Number: "INC0010009", Source: queue.SourceReconcile, OccurredAt: occurred, Reason: queue.ReasonNewRecord,
		Ticket: queue.JobTicket{Number: "INC0010009", State: "1", SysUpdatedOn: "2026-03-10 12:00:00"}}

	mention := event(queue.EventJobCreated)
	mention.Reason, mention.Message = queue.ReasonMention, event(queue.EventJobFollowUp).Message

	unlinked := event(queue.EventJobCreated)
	unlinked.Reason, unlinked.DuplicateOf, unlinked.Episode = queue.ReasonUnlinked, "INC0010000", 2

	tests := map[string]queue.JobEvent{
		"job.created":                           event(queue.EventJobCreated),
		"job.updated":                           event(queue.EventJobUpdated),
		"job.follow_up":                         event(queue.EventJobFollowUp),
		"job.cancelled":                         event(queue.EventJobCancelled),
		"job.created of a change":               changeRequest,
		"job.created, optional fields left out": minimal,
		"job.created by a mention":              mention,
		"job.created of an unlinked duplicate":  unlinked,
	}
	for _, reason := range []string{queue.ReasonNewRecord, queue.ReasonWindowOpened, queue.ReasonReopened, queue.ReasonReapproved, queue.ReasonUnlinked} {
		e := event(queue.EventJobCreated)
		e.Reason = reason
		tests["job.created: "+reason] = e
	}
	for name, e := range tests {
		t.Run(name, func(t *testing.T) {
			if err := contract.ValidateEvent(marshal(t, e)); err != nil {
				t.Errorf("ValidateEvent(%s) = %v, want nil", marshal(t, e), err)
			}
		})
	}
}

// mutate returns the JSON of v with edit applied to it as a generic value.
func mutate(t *testing.T, v any, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(marshal(t, v), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	return marshal(t, m)
}

func TestInvalidEvents(t *testing.T) {
	sub := func(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }
	tests := []struct {
		name string
		typ  string
		edit func(m map[string]any)
		want string // a violation, as the error prints it
	}{
		{"missing event_id", queue.EventJobCreated, func(m map[string]any) { delete(m, "event_id") }, "event_id: is required"},
		{"unknown type", queue.EventJobCreated, func(m map[string]any) { m["type"] = "job.deleted" }, "type: value must be one of"},
		{"another schema version", queue.EventJobCreated, func(m map[string]any) { m["schema_version"] = 2 }, "schema_version: value must be 1"},
		{"sequence as a string", queue.EventJobUpdated, func(m map[string]any) { m["sequence"] = "2" }, "sequence: got string, want integer"},
		{"sequence 0", queue.EventJobUpdated, func(m map[string]any) { m["sequence"] = 0 }, "sequence: is 0, less than 1"},
		{"event id not a uuid", queue.EventJobCreated, func(m map[string]any) { m["event_id"] = "evt-1" }, "event_id: 'evt-1' is not valid uuid"},
		{"gateway id not a gateway id", queue.EventJobCreated, func(m map[string]any) { m["gateway_id"] = "prod" }, "gateway_id: 'prod' does not match pattern"},
		{"unknown table", queue.EventJobCreated, func(m map[string]any) { m["table"] = "problem" }, "table: value must be one of"},
		{"unknown source", queue.EventJobCreated, func(m map[string]any) { m["source"] = "email" }, "source: value must be one of"},
		{"occurred_at not a date-time", queue.EventJobCreated, func(m map[string]any) { m["occurred_at"] = "2026-03-10 12:00:05" }, "occurred_at: '2026-03-10 12:00:05' is not valid date-time"},
		{"extra field", queue.EventJobCreated, func(m map[string]any) { m["priority"] = "1" }, "priority: is not a field of the contract"},
		{"extra ticket field", queue.EventJobCreated, func(m map[string]any) { sub(m, "ticket")["caller_id"] = "x" }, "ticket.caller_id: is not a field of the contract"},
		{"ticket active as a string", queue.EventJobCreated, func(m map[string]any) { sub(m, "ticket")["active"] = "true" }, "ticket.active: got string, want boolean"},
		{"ticket without sys_updated_on", queue.EventJobCreated, func(m map[string]any) { delete(sub(m, "ticket"), "sys_updated_on") }, "ticket.sys_updated_on: is required"},
		{"ticket time in RFC 3339", queue.EventJobCreated, func(m map[string]any) { sub(m, "ticket")["sys_updated_on"] = "2026-03-10T12:00:04Z" }, "ticket.sys_updated_on: '2026-03-10T12:00:04Z' does not match pattern"},
		{"created without reason", queue.EventJobCreated, func(m map[string]any) { delete(m, "reason") }, "reason: is required"},
		{"created for an unknown reason", queue.EventJobCreated, func(m map[string]any) { m["reason"] = "updated: state" }, "reason: value must be one of"},
		{"created by a mention without the message", queue.EventJobCreated, func(m map[string]any) { m["reason"] = queue.ReasonMention }, "message: is required"},
		{"created with changed fields", queue.EventJobCreated, func(m map[string]any) { m["changed_fields"] = []string{"state"} }, "changed_fields: is not sent with a job.created event"},
		{"updated without changed fields", queue.EventJobUpdated, func(m map[string]any) { delete(m, "changed_fields") }, "changed_fields: is required"},
		{"updated with no changed field", queue.EventJobUpdated, func(m map[string]any) { m["changed_fields"] = []string{} }, "changed_fields: is empty"},
		{"updated with an empty field name", queue.EventJobUpdated, func(m map[string]any) { m["changed_fields"] = []string{"state", ""} }, "changed_fields[1]: is empty"},
		{"updated with a reason", queue.EventJobUpdated, func(m map[string]any) { m["reason"] = "updated: state" }, "reason: is not sent with a job.updated event"},
		{"follow-up without message", queue.EventJobFollowUp, func(m map[string]any) { delete(m, "message") }, "message: is required"},
		{"follow-up from another field", queue.EventJobFollowUp, func(m map[string]any) { sub(m, "message")["field"] = "description" }, "message.field: value must be one of"},
		{"follow-up without author", queue.EventJobFollowUp, func(m map[string]any) { delete(sub(m, "message"), "author") }, "message.author: is required"},
		{"cancelled without reason", queue.EventJobCancelled, func(m map[string]any) { delete(m, "reason") }, "reason: is required"},
		{"cancelled with an empty reason", queue.EventJobCancelled, func(m map[string]any) { m["reason"] = "" }, "reason: is empty"},
		{"cancelled with a message", queue.EventJobCancelled, func(m map[string]any) { m["message"] = sub(mutateMap(t, event(queue.EventJobFollowUp)), "message") }, "message: is not sent with a job.cancelled event"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := mutate(t, event(tc.typ), tc.edit)
			err := contract.ValidateEvent(body)
			if !errors.Is(err, contract.ErrInvalidEvent) {
				t.Fatalf("ValidateEvent(%s) = %v, want ErrInvalidEvent", body, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ValidateEvent(%s) = %v, want it to say %q", body, err, tc.want)
			}
		})
	}
}

func mutateMap(t *testing.T, v any) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(marshal(t, v), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEventViolationsNameFields(t *testing.T) {
	body := mutate(t, event(queue.EventJobUpdated), func(m map[string]any) {
		delete(m, "job_id")
		m["ticket"].(map[string]any)["active"] = 1
	})
	var ce *contract.Error
	if err := contract.ValidateEvent(body); !errors.As(err, &ce) {
		t.Fatalf("ValidateEvent = %v, want a *contract.Error", err)
	}
	var fields []string
	for _, v := range ce.Violations {
		fields = append(fields, v.Field)
	}
	if strings.Join(fields, ",") != "job_id,ticket.active" {
		t.Errorf("violations name %q, want job_id and ticket.active", fields)
	}
}

func TestNotJSON(t *testing.T) {
	for _, body := range []string{"", "{", "not json", `{"job_id": "j",}`} {
		if err := contract.ValidateEvent([]byte(body)); !errors.Is(err, contract.ErrInvalidEvent) || !strings.Contains(err.Error(), "not JSON") {
			t.Errorf("ValidateEvent(%q) = %v, want ErrInvalidEvent, not JSON", body, err)
		}
		if err := contract.ValidateResult([]byte(body)); !errors.Is(err, queue.ErrMalformedResult) || !strings.Contains(err.Error(), "not JSON") {
			t.Errorf("ValidateResult(%q) = %v, want ErrMalformedResult, not JSON", body, err)
		}
	}
	for _, body := range []string{"[]", `"job"`, "null", "42"} {
		if err := contract.ValidateResult([]byte(body)); !errors.Is(err, queue.ErrMalformedResult) {
			t.Errorf("ValidateResult(%q) = %v, want ErrMalformedResult", body, err)
		}
	}
}

func TestValidResults(t *testing.T) {
	// A text of exactly MaxResultText characters, several bytes each: the
	// limit counts characters, as ServiceNow's field lengths do.
	longest := strings.Repeat("é", queue.MaxResultText)
	tests := map[string]queue.JobResult{
		"in_progress": {JobID: "j", ResultID: "r1", Status: queue.ResultInProgress, WorkNote: "started"},
		"succeeded": {JobID: "j", ResultID: "r2", Status: queue.ResultSucceeded, Summary: "Restarted the BGP session",
			WorkNote: "ran runbook net-42", PublicComment: "Fixed: the router is back", CloseCode: "Workaround provided"},
		"failed":             {JobID: "j", ResultID: "r3", Status: queue.ResultFailed, Summary: "Could not reach the router", WorkNote: "ssh timeout"},
		"partial":            {JobID: "j", ResultID: "r4", Status: queue.ResultPartial, Summary: "1 of 2 routers fixed", PublicComment: "Partly fixed"},
		"status only":        {JobID: "j", ResultID: "r5", Status: queue.ResultSucceeded},
		"texts at the limit": {JobID: "j", ResultID: "r6", Status: queue.ResultFailed, Summary: longest, WorkNote: longest, PublicComment: longest, CloseCode: longest},
	}
	for name, r := range tests {
		t.Run(name, func(t *testing.T) {
			if err := r.Validate(); err != nil {
				t.Fatalf("test case is not a valid result: %v", err)
			}
			if err := contract.ValidateResult(marshal(t, r)); err != nil {
				t.Errorf("ValidateResult(%s) = %v, want nil", marshal(t, r), err)
			}
		})
	}
}

func TestInvalidResults(t *testing.T) {
	valid := queue.JobResult{JobID: "j", ResultID: "r", Status: queue.ResultSucceeded, Summary: "done"}
	tooLong := strings.Repeat("x", queue.MaxResultText+1)
	tests := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"missing job_id", func(m map[string]any) { delete(m, "job_id") }, "job_id: is required"},
		{"missing result_id", func(m map[string]any) { delete(m, "result_id") }, "result_id: is required"},
		{"missing status", func(m map[string]any) { delete(m, "status") }, "status: is required"},
		{"blank job_id", func(m map[string]any) { m["job_id"] = "  " }, "job_id: is blank"},
		{"unknown status", func(m map[string]any) { m["status"] = "done" }, "status: value must be one of 'in_progress', 'succeeded', 'failed', 'partial'"},
		{"status in capitals", func(m map[string]any) { m["status"] = "SUCCEEDED" }, "status: value must be one of"},
		{"result_id as a number", func(m map[string]any) { m["result_id"] = 7 }, "result_id: got number, want string"},
		{"summary as an object", func(m map[string]any) { m["summary"] = map[string]any{"text": "done"} }, "summary: got object, want string"},
		{"misspelt field", func(m map[string]any) { m["sumary"] = "done" }, "sumary: is not a field of the contract"},
		{"summary too long", func(m map[string]any) { m["summary"] = tooLong }, "summary: has 4001 characters, more than 4000"},
		{"work note too long", func(m map[string]any) { m["work_note"] = tooLong }, "work_note: has 4001 characters, more than 4000"},
		{"public comment too long", func(m map[string]any) { m["public_comment"] = tooLong }, "public_comment: has 4001 characters, more than 4000"},
		{"close code too long", func(m map[string]any) { m["close_code"] = tooLong }, "close_code: has 4001 characters, more than 4000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := mutate(t, valid, tc.edit)
			err := contract.ValidateResult(body)
			if !errors.Is(err, queue.ErrMalformedResult) {
				t.Fatalf("ValidateResult(%.200s) = %v, want ErrMalformedResult", body, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ValidateResult(%.200s) = %v, want it to say %q", body, err, tc.want)
			}
		})
	}
}

// TestResultSchemaAgreesWithValidate: the schema and queue.JobResult's own
// check refuse the same results, so the writer's poison detection does not
// depend on which of the two it calls.
func TestResultSchemaAgreesWithValidate(t *testing.T) {
	results := []queue.JobResult{
		{JobID: "j", ResultID: "r", Status: queue.ResultInProgress},
		{JobID: "", ResultID: "r", Status: queue.ResultInProgress},
		{JobID: "j", ResultID: " \t", Status: queue.ResultInProgress},
		{JobID: "j", ResultID: "r", Status: ""},
		{JobID: "j", ResultID: "r", Status: "cancelled"},
		{JobID: "j", ResultID: "r", Status: queue.ResultFailed, WorkNote: strings.Repeat("ü", queue.MaxResultText)},
		{JobID: "j", ResultID: "r", Status: queue.ResultFailed, WorkNote: strings.Repeat("ü", queue.MaxResultText+1)},
		{JobID: strings.Repeat("j", queue.MaxResultText+1), ResultID: "r", Status: queue.ResultFailed},
	}
	for _, r := range results {
		goErr, schemaErr := r.Validate(), contract.ValidateResult(marshal(t, r))
		if (goErr == nil) != (schemaErr == nil) {
			t.Errorf("result %.120s: Validate() = %v but ValidateResult = %v", marshal(t, r), goErr, schemaErr)
		}
	}
}

func BenchmarkValidateResult(b *testing.B) {
	body, err := json.Marshal(queue.JobResult{JobID: "job_7c1d9e2a", ResultID: "res_0001", Status: queue.ResultSucceeded,
		Summary: "Restarted the BGP session on rtr-dc1-01", WorkNote: "runbook net-42: 3 steps, all ok",
		PublicComment: "The router is back; please confirm.", CloseCode: "Solution provided"})
	if err != nil {
		b.Fatal(err)
	}
	if err := contract.ValidateResult(body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := contract.ValidateResult(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateEvent(b *testing.B) {
	body, err := json.Marshal(event(queue.EventJobUpdated))
	if err != nil {
		b.Fatal(err)
	}
	if err := contract.ValidateEvent(body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := contract.ValidateEvent(body); err != nil {
			b.Fatal(err)
		}
	}
}
