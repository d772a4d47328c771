package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Ticket statuses: the decision taken on the record's current content.
const (
	// StatusProcessing: a processor claimed this version and has not
	// finished; if its claim expired it crashed, and a redelivery (or the
	// reconciler, StuckAfter past the lease) takes over.
	StatusProcessing = "processing"
	// StatusRetrying: a transient failure; the intake message is retried,
	// and the reconciler re-enqueues the ticket StuckAfter the last failed
	// attempt if nothing decided it by then.
	StatusRetrying     = "retrying"
	StatusAccepted     = "accepted"
	StatusOutOfScope   = "out_of_scope"
	StatusDeduplicated = "deduplicated"
	StatusDeferred     = "deferred"
	StatusExpired      = "expired"
	// StatusFailed: a permanent failure (record not found, unknown gateway
	// or table); the message is not retried.
	StatusFailed = "failed"
)

// Outcomes of a delivery that leave the status alone: the decision on the
// content stands, only LastOutcome records them.
const (
	OutcomeStale     = "stale"
	OutcomeUnchanged = "unchanged"
)

// Key identifies a ticket: one ServiceNow record as seen by one gateway.
type Key struct {
	GatewayID string
	Table     string
	SysID     string
}

// PK is the ticket item's partition key.
func (k Key) PK() string { return ticketPrefix + k.GatewayID + "#" + k.Table + "#" + k.SysID }

// Mirror is the part of a ServiceNow record snowgate acts on. Its hash
// decides whether a new version is a change worth acting on; sys_mod_count
// and sys_updated_on are deliberately outside it, so that an update that
// touches none of these fields (our own work note) is "unchanged".
type Mirror struct {
	Number              string `dynamodbav:"number" json:"number"`
	State               string `dynamodbav:"state" json:"state"`
	Priority            string `dynamodbav:"priority" json:"priority"`
	ShortDescription    string `dynamodbav:"short_description" json:"short_description"`
	Description         string `dynamodbav:"description" json:"description"`
	AssignmentGroup     string `dynamodbav:"assignment_group" json:"assignment_group"`
	AssignmentGroupName string `dynamodbav:"assignment_group_name" json:"assignment_group_name"`
	Environment         string `dynamodbav:"environment" json:"environment"`
	ConfigurationItem   string `dynamodbav:"configuration_item" json:"configuration_item"`
	Active              bool   `dynamodbav:"active" json:"active"`
	// Change requests only.
	Type      string `dynamodbav:"type" json:"type"`
	Approval  string `dynamodbav:"approval" json:"approval"`
	StartDate string `dynamodbav:"start_date" json:"start_date"`
	EndDate   string `dynamodbav:"end_date" json:"end_date"`
	// DescriptionSHA256 and ShortDescriptionSHA256 are set only when the
	// text was over its cap (MaxDescription, MaxShortDescription) and cut:
	// the SHA-256 of the full text, so the content hash sees a change past
	// the cap. Empty, they leave the hash as it always was.
	DescriptionSHA256      string `dynamodbav:"description_sha256,omitempty" json:"description_sha256,omitempty"`
	ShortDescriptionSHA256 string `dynamodbav:"short_description_sha256,omitempty" json:"short_description_sha256,omitempty"`
}

// Hash is a stable digest of the mirrored fields.
func (m Mirror) Hash() string {
	b, _ := json.Marshal(m) // a struct of strings and a bool always encodes
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Ticket is the state item of one record: its mirror, the last version
// processed and what happened to it.
type Ticket struct {
	GatewayID string `dynamodbav:"gateway_id"`
	Table     string `dynamodbav:"table"`
	SysID     string `dynamodbav:"sys_id"`
	Mirror
	// SysModCount is the last version seen (claimed, or recorded as
	// unchanged); meaningful only when ContentHash is set. A claim writes
	// it before the decision, so it says nothing about what was handled.
	SysModCount  int    `dynamodbav:"sys_mod_count"`
	SysUpdatedOn string `dynamodbav:"sys_updated_on"`
	ContentHash  string `dynamodbav:"content_hash"`
	// DecidedVersion is the highest sys_mod_count whose decision completed
	// (Finish, an unchanged version, or a version our own write produced:
	// Finish's SeenVersion, RecordOwnWrite); nil until one did. It never
	// goes down. Whatever means "this version was handled" (the
	// processor's cheap duplicate check, the reconciler's version checks)
	// compares against it, never against SysModCount, so an attempt that
	// failed after its claim is found again.
	DecidedVersion *int `dynamodbav:"decided_version,omitempty"`

	Status string `dynamodbav:"status"`
	Reason string `dynamodbav:"reason"`
	// JobID is the last job dispatched for this record.
	JobID             string `dynamodbav:"job_id,omitempty"`
	Fingerprint       string `dynamodbav:"fingerprint,omitempty"`
	DuplicateOf       string `dynamodbav:"duplicate_of,omitempty"` // sys_id of the first ticket
	DuplicateOfNumber string `dynamodbav:"duplicate_of_number,omitempty"`
	// DueAt is set while deferred: when the change request's window opens.
	DueAt string `dynamodbav:"due_at,omitempty"`
	// DueSent is the DueAt the reconciler last enqueued the ticket for; a
	// decision clears it.
	DueSent string `dynamodbav:"due_sent,omitempty"`
	// StuckAt, set while a decision is pending (processing, retrying, or a
	// failure before any claim), is when the reconciler re-enqueues the
	// ticket if nothing decided it by then (schema.IndexStuck).
	StuckAt string `dynamodbav:"stuck_at,omitempty"`
	// QueuedVersion and QueuedUntil (Unix ms): the reconciler enqueued the
	// record at that version, and does not enqueue it again before then.
	QueuedVersion int   `dynamodbav:"queued_version,omitempty"`
	QueuedUntil   int64 `dynamodbav:"queued_until,omitempty"`
	// WriteBack says what happened to the work note: "done", "off" or the error.
	WriteBack string `dynamodbav:"write_back,omitempty"`

	// Job is the ticket's current or last job; nil before its first.
	Job *Job `dynamodbav:"job,omitempty"`
	// Prior is what the last decision or failed attempt was based on
	// (see Basis).
	Prior *Prior `dynamodbav:"prior,omitempty"`
	// Ending is set by an attempt about to end the open job (MarkEnding)
	// until a decision finishes.
	Ending *Ending `dynamodbav:"ending,omitempty"`
	// JournalSeenAt is the sys_created_on (UTC, ServiceNow's layout) of the
	// newest comment or work note the processor has considered, and
	// JournalSeenIDs the entries of that second it has (ServiceNow stamps
	// whole seconds), so each entry is news once.
	JournalSeenAt  string   `dynamodbav:"journal_seen_at,omitempty"`
	JournalSeenIDs []string `dynamodbav:"journal_seen_ids,omitempty"`
	// CreatedOn is the record's sys_created_on: dedup links a duplicate to
	// the earliest-created incident of its group.
	CreatedOn string `dynamodbav:"sys_created_on,omitempty"`

	// ExpiresAt (Unix seconds) is set on a final ticket: when DynamoDB may
	// delete it (see Store.WithTicketTTL); 0 on a live one.
	ExpiresAt int64 `dynamodbav:"expires_at,omitempty"`

	ClaimToken   string `dynamodbav:"claim_token,omitempty"`
	ClaimExpires int64  `dynamodbav:"claim_expires,omitempty"` // Unix ms; 0 = released

	// Attempts counts processing attempts: claims and failures.
	Attempts      int       `dynamodbav:"attempts"`
	Source        string    `dynamodbav:"source,omitempty"`
	WebhookID     string    `dynamodbav:"webhook_id,omitempty"`
	LastOutcome   string    `dynamodbav:"last_outcome"`
	LastOutcomeAt time.Time `dynamodbav:"last_outcome_at"`
	LastError     string    `dynamodbav:"last_error,omitempty"`
	FirstSeenAt   time.Time `dynamodbav:"first_seen_at"`
	ProcessedAt   time.Time `dynamodbav:"processed_at,omitempty"`
	UpdatedAt     time.Time `dynamodbav:"updated_at"`
}

// Key returns the ticket's key.
func (t Ticket) Key() Key { return Key{GatewayID: t.GatewayID, Table: t.Table, SysID: t.SysID} }

// Decided is DecidedVersion, or -1 before any decision completed.
func (t Ticket) Decided() int {
	if t.DecidedVersion == nil {
		return -1
	}
	return *t.DecidedVersion
}

// Queued reports whether the reconciler enqueued version v (or a newer
// one) of the record and its marker is still valid at now.
func (t Ticket) Queued(v int, now time.Time) bool {
	return t.QueuedUntil > now.UnixMilli() && v <= t.QueuedVersion
}

// Due parses DueAt; zero when the ticket is not deferred.
func (t Ticket) Due() time.Time {
	d, _ := time.Parse(dueLayout, t.DueAt)
	return d
}
