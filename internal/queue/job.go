package queue

import "time"

// Message attributes of a job request, so the engine (and an operator
// browsing the queue) can route and filter without parsing the body.
const (
	AttrJobID     = "job_id"
	AttrGatewayID = "gateway_id"
	AttrTable     = "table"
)

// JobRequest asks the automation engine to act on one version of a record.
// It is the body of a dispatch queue message.
//
// JobID is derived from gateway, table, sys_id and the dispatched
// sys_mod_count, so a request re-sent after a processor crash carries the
// same id: the engine drops a job id it has already seen.
type JobRequest struct {
	JobID       string    `json:"job_id"`
	GatewayID   string    `json:"gateway_id"`
	GatewayName string    `json:"gateway_name"`
	WebhookID   string    `json:"webhook_id,omitempty"`
	Table       string    `json:"table"`
	SysID       string    `json:"sys_id"`
	Number      string    `json:"number"`
	SysModCount int       `json:"sys_mod_count"`
	Reason      string    `json:"reason"`
	Source      string    `json:"source"`
	RequestID   string    `json:"request_id,omitempty"`
	RequestedAt time.Time `json:"requested_at"`
	// EscalationGroup is the gateway's escalation group, for the engine's
	// runbooks: its sys_user_group sys_id when it was resolved at
	// registration, else the name as typed; empty when the gateway sets none.
	EscalationGroup string    `json:"escalation_group,omitempty"`
	Ticket          JobTicket `json:"ticket"`
}

// JobTicket is the record as the processor read it from ServiceNow. It is
// the engine's contract and therefore a type of its own, independent of how
// the state table stores tickets.
type JobTicket struct {
	Number              string `json:"number"`
	State               string `json:"state"`
	Priority            string `json:"priority,omitempty"`
	ShortDescription    string `json:"short_description"`
	Description         string `json:"description,omitempty"`
	AssignmentGroup     string `json:"assignment_group,omitempty"`
	AssignmentGroupName string `json:"assignment_group_name,omitempty"`
	Environment         string `json:"environment,omitempty"`
	ConfigurationItem   string `json:"configuration_item,omitempty"`
	Active              bool   `json:"active"`
	SysUpdatedOn        string `json:"sys_updated_on"`
	// Change requests only.
	Type      string `json:"type,omitempty"`
	Approval  string `json:"approval,omitempty"`
	StartDate string `json:"start_date,omitempty"`
	EndDate   string `json:"end_date,omitempty"`
}
