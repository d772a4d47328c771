package cli

import (
	"math"
	"strings"
	"time"

	"github.com/snowgate/snowgate/internal/budget"
	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/instancecheck"
	"github.com/snowgate/snowgate/internal/reconcile"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

// The types in this file are what `--output json` prints: the product's
// contract with scripts. Each is declared field by field with the names the
// documentation uses, and is filled from the storage or domain types by one
// function per view, so a field added to a stored item never reaches the
// output by accident, and internal state (claim tokens and leases, content
// hashes, key prefixes, secret hashes, signing key locations) never does.
// Times are RFC 3339 strings in UTC.
//
// Each shape is documented once, as a JSON Schema under docs/schemas/, and
// the tests validate every command's real output against it: a change here
// is a change of the contract, and goes with its schema.

// knownAPIURL is the API base URL when it is known without asking AWS
// (see Call.known), without a trailing slash; else "".
func (c *Call) knownAPIURL() string { return strings.TrimRight(c.known(settingAPIURL), "/") }

// rfc3339 formats a time for JSON output: RFC 3339 in UTC, with the
// fraction of a second when there is one.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// optionalTime is rfc3339, or "" (an omitted key) for the zero time.
func optionalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return rfc3339(t)
}

// serviceNowTime turns a ServiceNow date-time ("2006-01-02 15:04:05", UTC:
// the integration user's time zone is required to be UTC) into RFC 3339.
// An empty value stays empty; a value in any other layout is passed on
// unchanged rather than dropped.
func serviceNowTime(s string) string {
	if s == "" {
		return ""
	}
	t, err := time.ParseInLocation(servicenow.TimeLayout, s, time.UTC)
	if err != nil {
		return s
	}
	return rfc3339(t)
}

// gatewayJSON is a gateway (docs/schemas/gateway.schema.json).
type gatewayJSON struct {
	ID                    string   `json:"id"`
	Name                  string   `json:"name"`
	Type                  string   `json:"type"`
	Description           string   `json:"description"`
	Active                bool     `json:"active"`
	InstanceURL           string   `json:"instance_url"`
	AllowCustomHost       bool     `json:"allow_custom_host"`
	Auth                  string   `json:"auth"`
	Username              string   `json:"username"`
	ClientID              string   `json:"client_id"`
	CredentialsSecretARN  string   `json:"credentials_secret_arn"`
	AssignmentGroupFilter string   `json:"assignment_group_filter"`
	AssignmentGroupIDs    []string `json:"assignment_group_ids"`
	EnvironmentFilter     string   `json:"environment_filter"`
	Scope                 string   `json:"scope"`
	DedupWindowMinutes    int      `json:"dedup_window_minutes"`
	EscalationGroup       string   `json:"escalation_group"`
	EscalationGroupID     string   `json:"escalation_group_id"`
	WriteBack             bool     `json:"write_back"`
	// The job lifecycle settings, as they take effect (defaults applied).
	Org              string `json:"org"`
	Mode             string `json:"mode"`
	Mention          string `json:"mention"`
	OnSuccess        string `json:"on_success"`
	OnFailure        string `json:"on_failure"`
	ResolveCloseCode string `json:"resolve_close_code"`
	DedupNote        bool   `json:"dedup_note"`
	// The ServiceNow budget's settings, defaults applied.
	RateLimitPerHour int    `json:"rate_limit_per_hour"`
	Burst            int    `json:"burst"`
	MaxConcurrency   int    `json:"max_concurrency"`
	CreatedAt        string `json:"created_at"`
	UpdatedAt        string `json:"updated_at"`
}

func gatewayOutput(g registry.Gateway) gatewayJSON {
	b := g.BudgetSettings().WithDefaults()
	return gatewayJSON{
		ID: g.ID, Name: g.Name, Type: g.Type, Description: g.Description, Active: g.Active,
		InstanceURL: g.InstanceURL, AllowCustomHost: g.AllowCustomHost, Auth: g.Auth, Username: g.Username, ClientID: g.ClientID,
		CredentialsSecretARN:  g.CredentialsSecretARN,
		AssignmentGroupFilter: g.AssignmentGroupFilter, AssignmentGroupIDs: nonNil(g.AssignmentGroupIDs),
		EnvironmentFilter: g.EnvironmentFilter, Scope: g.ScopeQuery(), DedupWindowMinutes: g.DedupWindowMinutes,
		EscalationGroup: g.EscalationGroup, EscalationGroupID: g.EscalationGroupID, WriteBack: g.WriteBack,
		Org: g.Org, Mode: g.JobMode(), Mention: g.MentionToken(), OnSuccess: g.SuccessAction(), OnFailure: g.FailureAction(),
		ResolveCloseCode: g.CloseCode(), DedupNote: g.DedupNote(),
		RateLimitPerHour: b.RatePerHour, Burst: b.Burst, MaxConcurrency: b.MaxConcurrency,
		CreatedAt: rfc3339(g.CreatedAt), UpdatedAt: rfc3339(g.UpdatedAt),
	}
}

// nonNil prints an empty list as [], not null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// gatewayListOutput is gateway list (docs/schemas/gateway-list.schema.json).
func gatewayListOutput(gs []registry.Gateway) []gatewayJSON {
	return each(gs, gatewayOutput)
}

// gatewayShowJSON is a gateway with its webhooks and its ServiceNow
// budget now (docs/schemas/gateway-show.schema.json).
type gatewayShowJSON struct {
	gatewayJSON
	Webhooks []webhookJSON `json:"webhooks"`
	// Budget is left out when the state table could not be read;
	// BudgetUnavailable then says why.
	Budget            *budgetJSON `json:"budget,omitempty"`
	BudgetUnavailable string      `json:"budget_unavailable,omitempty"`
}

// gatewayShowOutput shows a gateway, its webhooks and its budget; apiURL
// (possibly empty) makes the webhooks' URLs.
func gatewayShowOutput(g registry.Gateway, hooks []registry.Webhook, live budgetLive, apiURL string, now time.Time) gatewayShowJSON {
	out := gatewayShowJSON{gatewayJSON: gatewayOutput(g), Webhooks: each(hooks, func(h registry.Webhook) webhookJSON {
		return webhookOutput(newView(h, apiURL, masked, now))
	})}
	if live.status != nil {
		b := budgetOutput(*live.status)
		out.Budget = &b
	} else {
		out.BudgetUnavailable = live.unavailable
	}
	return out
}

// budgetJSON is a gateway's ServiceNow budget as it is now, read from the
// state table (the budget object of gateway-show.schema.json).
type budgetJSON struct {
	// RatePerHour and Burst are the bucket in force: the settings, lowered
	// by the limit the instance sent.
	RatePerHour         int     `json:"rate_per_hour"`
	Burst               int     `json:"burst"`
	LearnedLimitPerHour int     `json:"learned_limit_per_hour,omitempty"`
	LearnedAt           string  `json:"learned_at,omitempty"`
	Tokens              float64 `json:"tokens"`
	MaxConcurrency      int     `json:"max_concurrency"`
	SlotsInUse          int     `json:"slots_in_use"`
	pauseJSON
}

// pauseJSON is a gateway's pause, shared by gateway show and gateway
// resume; the pause keys are left out while it is not paused.
type pauseJSON struct {
	Paused              bool   `json:"paused"`
	PausedUntil         string `json:"paused_until,omitempty"`
	PausedAt            string `json:"paused_at,omitempty"`
	PauseCause          string `json:"pause_cause,omitempty"`
	PauseReason         string `json:"pause_reason,omitempty"`
	ProbeRequired       bool   `json:"probe_required,omitempty"`
	ConsecutiveFailures int    `json:"consecutive_failures"`
}

func pauseOutput(st budget.Status) pauseJSON {
	p := pauseJSON{Paused: st.Paused, ConsecutiveFailures: st.Failures}
	if st.Paused {
		p.PausedUntil, p.PausedAt = optionalTime(st.PausedUntil), optionalTime(st.PausedAt)
		p.PauseCause, p.PauseReason, p.ProbeRequired = string(st.PauseCause), st.PauseReason, st.ProbeRequired
	}
	return p
}

func budgetOutput(st budget.Status) budgetJSON {
	return budgetJSON{
		RatePerHour: st.Rate, Burst: st.Burst, LearnedLimitPerHour: st.LearnedLimit, LearnedAt: optionalTime(st.LearnedAt),
		Tokens: floorTokens(st.Tokens), MaxConcurrency: st.MaxConcurrency, SlotsInUse: st.SlotsInUse,
		pauseJSON: pauseOutput(st),
	}
}

// floorTokens rounds tokens down to hundredths: a refill of a fraction of
// a token is no reason for a long decimal, and rounding up would promise a
// token that is not there yet.
func floorTokens(t float64) float64 { return math.Floor(t*100) / 100 }

// gatewayResumedJSON is gateway resume
// (docs/schemas/gateway-resume.schema.json): the pause it lifted, if any,
// and the failure count it reset.
type gatewayResumedJSON struct {
	GatewayID string `json:"gateway_id"`
	// Resumed is true when a pause was lifted; the pause keys describe it.
	Resumed             bool   `json:"resumed"`
	PausedUntil         string `json:"paused_until,omitempty"`
	PausedAt            string `json:"paused_at,omitempty"`
	PauseCause          string `json:"pause_cause,omitempty"`
	PauseReason         string `json:"pause_reason,omitempty"`
	ProbeRequired       bool   `json:"probe_required,omitempty"`
	ConsecutiveFailures int    `json:"consecutive_failures"`
}

// gatewayResumedOutput is what resume lifted: the budget as it was before.
func gatewayResumedOutput(id string, before budget.Status) gatewayResumedJSON {
	p := pauseOutput(before)
	return gatewayResumedJSON{
		GatewayID: id, Resumed: p.Paused, PausedUntil: p.PausedUntil, PausedAt: p.PausedAt,
		PauseCause: p.PauseCause, PauseReason: p.PauseReason, ProbeRequired: p.ProbeRequired,
		ConsecutiveFailures: p.ConsecutiveFailures,
	}
}

// gatewayDeletedJSON is gateway delete
// (docs/schemas/gateway-delete.schema.json).
type gatewayDeletedJSON struct {
	Deleted         string   `json:"deleted"`
	DeletedWebhooks []string `json:"deleted_webhooks"`
}

// gatewayDeletedOutput names the gateway and the webhooks deleted with it.
func gatewayDeletedOutput(g registry.Gateway, deleted []registry.Webhook) gatewayDeletedJSON {
	return gatewayDeletedJSON{Deleted: g.ID, DeletedWebhooks: each(deleted, func(h registry.Webhook) string { return h.ID })}
}

// webhookJSON is a webhook with its secrets masked
// (docs/schemas/webhook.schema.json).
type webhookJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	SourceType  string `json:"source_type"`
	EventType   string `json:"event_type"`
	GatewayID   string `json:"gateway_id"`
	Active      bool   `json:"active"`
	Signing     string `json:"signing"`
	Path        string `json:"path"`
	// URL is left out when the CLI does not know the API URL.
	URL       string            `json:"url,omitempty"`
	Secrets   []secretStateJSON `json:"secrets"`
	CreatedAt string            `json:"created_at"`
	UpdatedAt string            `json:"updated_at"`
}

// secretStateJSON is one accepted secret or signing key, not revealed.
type secretStateJSON struct {
	Current   bool   `json:"current"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

func webhookOutput(v webhookView) webhookJSON {
	w := v.Webhook
	out := webhookJSON{
		ID: w.ID, Name: w.Name, Description: w.Description, SourceType: w.SourceType, EventType: w.EventType,
		GatewayID: w.GatewayID, Active: w.Active, Signing: w.Signing, Path: w.Path, URL: v.URL,
		Secrets:   []secretStateJSON{},
		CreatedAt: rfc3339(w.CreatedAt), UpdatedAt: rfc3339(w.UpdatedAt),
	}
	for _, s := range v.Secrets {
		st := secretStateJSON{Current: s.Current}
		if s.Expires != nil {
			st.ExpiresAt = rfc3339(*s.Expires)
		}
		out.Secrets = append(out.Secrets, st)
	}
	return out
}

// webhookListOutput is webhook list (docs/schemas/webhook-list.schema.json).
func webhookListOutput(vs []webhookView) []webhookJSON {
	return each(vs, webhookOutput)
}

// webhookCreatedJSON is a webhook just created or given a new secret: the
// secret, shown this once, and the Business Rule that sends it
// (docs/schemas/webhook-created.schema.json).
type webhookCreatedJSON struct {
	webhookJSON
	Secret       string           `json:"secret"`
	BusinessRule businessRuleJSON `json:"business_rule"`
}

// businessRuleJSON is the Business Rule to set up in ServiceNow. Its keys
// are the rule's fields as ServiceNow names them; the simulator of make dev
// reads name, table, condition, script, insert and update.
type businessRuleJSON struct {
	Name  string `json:"name"`
	Table string `json:"table"`
	// Application is the application scope to create the rule in
	// ("global").
	Application   string `json:"application"`
	Active        bool   `json:"active"`
	Advanced      bool   `json:"advanced"`
	When          string `json:"when"`
	Order         int    `json:"order"`
	Insert        bool   `json:"insert"`
	Update        bool   `json:"update"`
	Condition     string `json:"condition"`
	ConditionText string `json:"condition_text"`
	Script        string `json:"script"`
}

func businessRuleOutput(r businessrule.Rule) businessRuleJSON {
	return businessRuleJSON{
		Name: r.Name, Table: r.Table, Application: r.Application, Active: r.Active, Advanced: r.Advanced, When: r.When, Order: r.Order,
		Insert: r.Insert, Update: r.Update, Condition: r.Condition, ConditionText: r.ConditionText, Script: r.Script,
	}
}

// webhookCreatedOutput is webhook create and rotate-secret: v carries the
// new secret and the rendered rule.
func webhookCreatedOutput(v webhookView) webhookCreatedJSON {
	out := webhookCreatedJSON{webhookJSON: webhookOutput(v), Secret: v.Secret}
	if v.BusinessRule != nil {
		out.BusinessRule = businessRuleOutput(*v.BusinessRule)
	}
	return out
}

// webhookDeletedJSON is webhook delete
// (docs/schemas/webhook-delete.schema.json).
type webhookDeletedJSON struct {
	Deleted  string `json:"deleted"`
	Reminder string `json:"reminder"`
}

// ticketJSON is one ticket: what snowgate decided about a record, and the
// record's mirrored fields under their ServiceNow names
// (docs/schemas/ticket.schema.json).
type ticketJSON struct {
	GatewayID    string `json:"gateway_id"`
	Table        string `json:"table"`
	SysID        string `json:"sys_id"`
	Number       string `json:"number"`
	SysModCount  int    `json:"sys_mod_count"`
	SysUpdatedOn string `json:"sys_updated_on,omitempty"`

	Status        string `json:"status"`
	Reason        string `json:"reason"`
	LastOutcome   string `json:"last_outcome,omitempty"`
	LastOutcomeAt string `json:"last_outcome_at,omitempty"`
	// JobID is the last job's id (job.id when Job is there); kept for
	// the tickets recorded before jobs had a lifecycle, which have no job.
	JobID             string `json:"job_id,omitempty"`
	DuplicateOf       string `json:"duplicate_of,omitempty"`
	DuplicateOfNumber string `json:"duplicate_of_number,omitempty"`
	DueAt             string `json:"due_at,omitempty"`
	WriteBack         string `json:"write_back,omitempty"`
	LastError         string `json:"last_error,omitempty"`
	Attempts          int    `json:"attempts"`
	Source            string `json:"source,omitempty"`
	WebhookID         string `json:"webhook_id,omitempty"`
	FirstSeenAt       string `json:"first_seen_at,omitempty"`
	ProcessedAt       string `json:"processed_at,omitempty"`
	UpdatedAt         string `json:"updated_at"`

	State               string `json:"state"`
	Priority            string `json:"priority"`
	ShortDescription    string `json:"short_description"`
	Description         string `json:"description"`
	AssignmentGroup     string `json:"assignment_group"`
	AssignmentGroupName string `json:"assignment_group_name"`
	Environment         string `json:"environment"`
	ConfigurationItem   string `json:"configuration_item"`
	Active              bool   `json:"active"`
	Type                string `json:"type"`
	Approval            string `json:"approval"`
	StartDate           string `json:"start_date"`
	EndDate             string `json:"end_date"`

	// JobState is Job's state, beside the ticket's status for filters;
	// Job is the ticket's current or last job. Both are left out when it
	// never had one.
	JobState string   `json:"job_state,omitempty"`
	Job      *jobJSON `json:"job,omitempty"`
}

// jobJSON is a ticket's job: its state, the events sent for it and the
// results written back.
type jobJSON struct {
	ID      string          `json:"id"`
	State   string          `json:"state"`
	Episode int             `json:"episode"`
	Events  []jobEventJSON  `json:"events"`
	Results []jobResultJSON `json:"results"`
}

type jobEventJSON struct {
	Type     string `json:"type"`
	Sequence int    `json:"sequence"`
	EventID  string `json:"event_id"`
	At       string `json:"at"`
}

type jobResultJSON struct {
	ResultID string `json:"result_id"`
	Status   string `json:"status"`
	At       string `json:"at"`
}

// jobOutput is nil for a ticket without a job.
func jobOutput(j *state.Job) *jobJSON {
	if j == nil {
		return nil
	}
	return &jobJSON{
		ID: j.ID, State: j.State, Episode: j.Episode,
		Events: each(j.Events, func(e state.JobEventRecord) jobEventJSON {
			return jobEventJSON{Type: e.Type, Sequence: e.Sequence, EventID: e.EventID, At: rfc3339(e.At)}
		}),
		Results: each(j.Results, func(r state.JobResultRecord) jobResultJSON {
			return jobResultJSON{ResultID: r.ResultID, Status: r.Status, At: rfc3339(r.At)}
		}),
	}
}

func ticketOutput(t state.Ticket) ticketJSON {
	return ticketJSON{
		GatewayID: t.GatewayID, Table: t.Table, SysID: t.SysID, Number: t.Number,
		SysModCount: t.SysModCount, SysUpdatedOn: serviceNowTime(t.SysUpdatedOn),
		Status: t.Status, Reason: t.Reason, LastOutcome: t.LastOutcome, LastOutcomeAt: optionalTime(t.LastOutcomeAt),
		JobID: t.JobID, DuplicateOf: t.DuplicateOf, DuplicateOfNumber: t.DuplicateOfNumber, DueAt: t.DueAt,
		WriteBack: t.WriteBack, LastError: t.LastError, Attempts: t.Attempts, Source: t.Source, WebhookID: t.WebhookID,
		FirstSeenAt: optionalTime(t.FirstSeenAt), ProcessedAt: optionalTime(t.ProcessedAt), UpdatedAt: rfc3339(t.UpdatedAt),

		State: t.State, Priority: t.Priority, ShortDescription: t.ShortDescription, Description: t.Description,
		AssignmentGroup: t.AssignmentGroup, AssignmentGroupName: t.AssignmentGroupName, Environment: t.Environment,
		ConfigurationItem: t.ConfigurationItem, Active: t.Active, Type: t.Type, Approval: t.Approval,
		StartDate: serviceNowTime(t.StartDate), EndDate: serviceNowTime(t.EndDate),

		JobState: jobState(t), Job: jobOutput(t.Job),
	}
}

// ticketListOutput is ticket list and ticket show
// (docs/schemas/ticket-list.schema.json).
func ticketListOutput(ts []state.Ticket) []ticketJSON {
	return each(ts, ticketOutput)
}

// dlqMessageJSON is one dead-lettered message
// (docs/schemas/dlq-message.schema.json).
type dlqMessageJSON struct {
	MessageID    string            `json:"message_id"`
	SentAt       string            `json:"sent_at,omitempty"`
	ReceiveCount int               `json:"receive_count"`
	Source       string            `json:"source,omitempty"`
	Summary      string            `json:"summary"`
	GatewayID    string            `json:"gateway_id,omitempty"`
	Table        string            `json:"table,omitempty"`
	SysID        string            `json:"sys_id,omitempty"`
	Number       string            `json:"number,omitempty"`
	Attributes   map[string]string `json:"attributes,omitempty"`
	Body         string            `json:"body"`
}

func dlqMessageOutput(m dlqMessage) dlqMessageJSON {
	return dlqMessageJSON{
		MessageID: m.MessageID, SentAt: optionalTime(m.SentAt), ReceiveCount: m.ReceiveCount, Source: m.Source,
		Summary: m.Summary, GatewayID: m.GatewayID, Table: m.Table, SysID: m.SysID, Number: m.Number,
		Attributes: m.Attrs, Body: m.Body,
	}
}

// dlqListOutput is dlq list (docs/schemas/dlq-list.schema.json).
func dlqListOutput(ms []dlqMessage) []dlqMessageJSON {
	return each(ms, dlqMessageOutput)
}

// dlqRedriveJSON is dlq redrive, with or without --dry-run
// (docs/schemas/dlq-redrive.schema.json).
type dlqRedriveJSON struct {
	Queue      string               `json:"queue"`
	DryRun     bool                 `json:"dry_run"`
	Moved      int                  `json:"moved"`
	NotDeleted int                  `json:"not_deleted"`
	Failed     int                  `json:"failed"`
	Failures   []redriveFailureJSON `json:"failures"`
	// Messages are what a dry run would move ([] for an empty DLQ); left
	// out otherwise.
	Messages *[]dlqMessageJSON `json:"messages,omitempty"`
}

type redriveFailureJSON struct {
	MessageID string `json:"message_id"`
	Reason    string `json:"reason"`
}

func dlqRedriveOutput(rep redriveReport) dlqRedriveJSON {
	out := dlqRedriveJSON{
		Queue: rep.Queue, DryRun: rep.DryRun, Moved: rep.Moved, NotDeleted: rep.NotDeleted,
		Failed: len(rep.Failures), Failures: each(rep.Failures, func(f redriveFailure) redriveFailureJSON { return redriveFailureJSON(f) }),
	}
	if rep.DryRun {
		msgs := dlqListOutput(rep.Messages)
		out.Messages = &msgs
	}
	return out
}

// reconcileJSON is a reconcile run (docs/schemas/reconcile.schema.json).
type reconcileJSON struct {
	Passes   []reconcilePassJSON  `json:"passes"`
	Due      []reconcileDueJSON   `json:"due"`
	OpenJobs []reconcileWatchJSON `json:"open_jobs"`
	Stuck    []reconcileStuckJSON `json:"stuck"`
}

// reconcilePassJSON is one gateway × table pass.
type reconcilePassJSON struct {
	GatewayID string `json:"gateway_id"`
	Table     string `json:"table"`
	From      string `json:"from,omitempty"`
	// Watermark is the last record the pass handled; left out when none.
	Watermark *watermarkJSON `json:"watermark,omitempty"`
	Scanned   int            `json:"scanned"`
	Enqueued  int            `json:"enqueued"`
	Skipped   int            `json:"skipped"`
	Pages     int            `json:"pages"`
	Calls     int            `json:"calls"`
	Done      bool           `json:"done"`
	Stopped   string         `json:"stopped,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// watermarkJSON is a position in a table's changes.
type watermarkJSON struct {
	SysUpdatedOn string `json:"sys_updated_on"`
	SysID        string `json:"sys_id"`
}

// reconcileDueJSON is the re-enqueueing of one gateway's due change requests.
type reconcileDueJSON struct {
	GatewayID string `json:"gateway_id"`
	Enqueued  int    `json:"enqueued"`
	Skipped   int    `json:"skipped"`
	Error     string `json:"error,omitempty"`
}

// reconcileWatchJSON is the re-check of one gateway's open-job tickets.
type reconcileWatchJSON struct {
	GatewayID string `json:"gateway_id"`
	Open      int    `json:"open"`
	Enqueued  int    `json:"enqueued"`
	Calls     int    `json:"calls"`
	Error     string `json:"error,omitempty"`
}

// reconcileStuckJSON is the re-enqueueing of one gateway's stuck tickets.
type reconcileStuckJSON struct {
	GatewayID string `json:"gateway_id"`
	Found     int    `json:"found"`
	Enqueued  int    `json:"enqueued"`
	Skipped   int    `json:"skipped"`
	Error     string `json:"error,omitempty"`
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func reconcileOutput(rep reconcile.Report) reconcileJSON {
	v := reconcileJSON{Passes: []reconcilePassJSON{}, Due: []reconcileDueJSON{}, OpenJobs: []reconcileWatchJSON{}, Stuck: []reconcileStuckJSON{}}
	for _, r := range rep.Results {
		p := reconcilePassJSON{GatewayID: r.GatewayID, Table: r.Table, From: optionalTime(r.From), Scanned: r.Scanned,
			Enqueued: r.Enqueued, Skipped: r.Skipped, Pages: r.Pages, Calls: r.Calls, Done: r.Done, Stopped: r.Stopped}
		if !r.Position.IsZero() {
			p.Watermark = &watermarkJSON{SysUpdatedOn: rfc3339(r.Position.UpdatedOn), SysID: r.Position.SysID}
		}
		if r.Err != nil {
			p.Error = r.Err.Error()
		}
		v.Passes = append(v.Passes, p)
	}
	for _, d := range rep.Due {
		v.Due = append(v.Due, reconcileDueJSON{GatewayID: d.GatewayID, Enqueued: d.Enqueued, Skipped: d.Skipped, Error: errText(d.Err)})
	}
	for _, w := range rep.Watched {
		v.OpenJobs = append(v.OpenJobs, reconcileWatchJSON{GatewayID: w.GatewayID, Open: w.Open, Enqueued: w.Enqueued, Calls: w.Calls, Error: errText(w.Err)})
	}
	for _, st := range rep.Stuck {
		v.Stuck = append(v.Stuck, reconcileStuckJSON{GatewayID: st.GatewayID, Found: st.Found, Enqueued: st.Enqueued, Skipped: st.Skipped, Error: errText(st.Err)})
	}
	return v
}

// versionJSON is `2501 version`: what the binary's build information says.
type versionJSON struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	BuildDate string `json:"build_date"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

func versionOutput(v buildInfo) versionJSON {
	return versionJSON(v)
}

// gatewayCheckJSON is gateway check: each check of the gateway against its
// ServiceNow instance (docs/schemas/gateway-check.schema.json).
type gatewayCheckJSON struct {
	GatewayID   string              `json:"gateway_id"`
	InstanceURL string              `json:"instance_url"`
	OK          bool                `json:"ok"`
	Checks      []instanceCheckJSON `json:"checks"`
}

// instanceCheckJSON is one check: ok, failed or skipped.
type instanceCheckJSON struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	// Fix is left out unless the check failed.
	Fix string `json:"fix,omitempty"`
}

func gatewayCheckOutput(rep instancecheck.Report) gatewayCheckJSON {
	return gatewayCheckJSON{GatewayID: rep.GatewayID, InstanceURL: rep.InstanceURL, OK: !rep.Failed(),
		Checks: each(rep.Checks, func(c instancecheck.Check) instanceCheckJSON {
			return instanceCheckJSON{Name: c.Name, Status: string(c.Status), Detail: c.Detail, Fix: c.Fix}
		})}
}

// each converts every element of xs with f. The result is never nil, so an
// empty list prints as [] as its schema says, not null.
func each[T, V any](xs []T, f func(T) V) []V {
	out := make([]V, 0, len(xs))
	for _, x := range xs {
		out = append(out, f(x))
	}
	return out
}
