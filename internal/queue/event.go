package queue

import (
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// EventSchemaVersion is the version of the job event contract
// (docs/schemas/events). It changes only with an incompatible change;
// adding an optional field keeps it.
const EventSchemaVersion = 1

// Job event types, the "type" of a JobEvent and its "type" message
// attribute. See "Ticket lifecycle" in the design: a ticket has at most one
// open job, and everything that happens to the ticket while it is open is
// news for that job.
const (
	// EventJobCreated: a ticket entered scope with no open job.
	EventJobCreated = "job.created"
	// EventJobUpdated: a later version of a ticket with an open job whose
	// mirrored fields changed; ChangedFields names them.
	EventJobUpdated = "job.updated"
	// EventJobFollowUp: a comment or work note mentioning the gateway's
	// mention token on a ticket with an open job; Message holds it.
	EventJobFollowUp = "job.follow_up"
	// EventJobCancelled: a person closed, cancelled or resolved the ticket,
	// or it left the gateway's scope, while its job was open.
	EventJobCancelled = "job.cancelled"
)

// EventTypes lists the job event types.
var EventTypes = []string{EventJobCreated, EventJobUpdated, EventJobFollowUp, EventJobCancelled}

// Message attributes of a job event, beside AttrJobID, AttrGatewayID and
// AttrTable, so an engine can route without parsing the body.
const (
	AttrEventType = "type"
	AttrEventID   = "event_id"
)

// Reasons a job is created (JobEvent.Reason of job.created).
const (
	ReasonNewRecord    = "new record"
	ReasonWindowOpened = "change window opened"
	ReasonMention      = "mention"
	ReasonReopened     = "reopened"
	ReasonReapproved   = "re-approved for a new window"
	ReasonUnlinked     = "unlinked from its primary"
)

// JobEvent is the body of a dispatch queue message: one thing that
// happened to a job. It is the engine's contract (docs/schemas/events).
//
// EventID is derived (EventIDFor) from the ticket, the episode, the record
// version, the event type and, for follow-ups, the journal entry, so an
// event re-sent after a crash carries the same id: the engine drops an id
// it has seen. Sequence counts the job's events from 1, in the order the
// processor decided them.
type JobEvent struct {
	Type          string `json:"type"`
	SchemaVersion int    `json:"schema_version"`
	EventID       string `json:"event_id"`
	JobID         string `json:"job_id"`
	Sequence      int    `json:"sequence"`
	// Episode counts the ticket's jobs from 1: a reopened incident's new
	// job is episode 2.
	Episode     int       `json:"episode"`
	GatewayID   string    `json:"gateway_id"`
	GatewayName string    `json:"gateway_name"`
	Org         string    `json:"org,omitempty"`
	WebhookID   string    `json:"webhook_id,omitempty"`
	Table       string    `json:"table"`
	SysID       string    `json:"sys_id"`
	Number      string    `json:"number"`
	SysModCount int       `json:"sys_mod_count"`
	Source      string    `json:"source"`
	RequestID   string    `json:"request_id,omitempty"`
	OccurredAt  time.Time `json:"occurred_at"`
	// EscalationGroup is the gateway's escalation group: its
	// sys_user_group sys_id when it was resolved at registration, else the
	// name as typed; empty when the gateway sets none.
	EscalationGroup string    `json:"escalation_group,omitempty"`
	Ticket          JobTicket `json:"ticket"`

	// Reason: why the job was created (job.created, one of the Reason
	// constants) or cancelled (job.cancelled, in words).
	Reason string `json:"reason,omitempty"`
	// ChangedFields (job.updated) names the mirrored fields that changed,
	// with their ServiceNow names.
	ChangedFields []string `json:"changed_fields,omitempty"`
	// Message (job.follow_up, and job.created by a mention) is the journal
	// entry that mentioned the gateway.
	Message *JournalMessage `json:"message,omitempty"`
	// DuplicateOf (job.created of an unlinked ticket) is the number of the
	// ticket it was deduplicated against.
	DuplicateOf string `json:"duplicate_of,omitempty"`
}

// JournalMessage is a comment or work note as the engine sees it.
type JournalMessage struct {
	// Field is "comments" (public) or "work_notes".
	Field     string    `json:"field"`
	Text      string    `json:"text"`
	Author    string    `json:"author"`
	EnteredAt time.Time `json:"entered_at"`
	// EntryID is the sys_journal_field entry's sys_id.
	EntryID string `json:"entry_id"`
	// TextSHA256 is set only when the text was longer than its cap
	// (state.MaxJournalText) and Text holds its beginning: the SHA-256
	// (hex) of the full text.
	TextSHA256 string `json:"text_sha256,omitempty"`
}

// eventNamespace scopes event ids (UUID v5).
var eventNamespace = uuid.MustParse("0c9e3f4a-5b7d-4e21-8f36-d1a2b3c4e5f6")

// EventIDFor derives a job event's id from what makes the event unique:
// the ticket (gateway, table, sys_id), the episode, the record version
// decided, the event type and a discriminator (the journal entry's sys_id
// for a follow-up, "" otherwise).
func EventIDFor(gatewayID, table, sysID string, episode, sysModCount int, eventType, discriminator string) string {
	return uuid.NewSHA1(eventNamespace, []byte(strings.Join([]string{
		gatewayID, table, sysID, strconv.Itoa(episode), strconv.Itoa(sysModCount), eventType, discriminator,
	}, "\n"))).String()
}
