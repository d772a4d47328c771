// Package queue defines the messages that travel on snowgate's SQS queues
// and sends them. Ingest and the reconciler produce IntakeMessages; the
// processor consumes them and produces JobEvents on the dispatch queue; the
// engine answers with JobResults on the results queue.
package queue

import "time"

// Sources of an intake message, also sent as the "source" message attribute.
const (
	SourceWebhook   = "webhook"
	SourceReconcile = "reconcile"
	SourceDeferred  = "deferred"
	SourceCLI       = "cli"
)

// Sources lists every source an intake message may name.
var Sources = []string{SourceWebhook, SourceReconcile, SourceDeferred, SourceCLI}

// AttrSource is the message attribute naming the source.
const AttrSource = "source"

// IntakeMessage asks the processor to fetch and process one record.
type IntakeMessage struct {
	GatewayID  string    `json:"gateway_id"`
	WebhookID  string    `json:"webhook_id,omitempty"`
	Table      string    `json:"table"`
	SysID      string    `json:"sys_id"`
	Source     string    `json:"source"`
	ReceivedAt time.Time `json:"received_at"`
	RequestID  string    `json:"request_id,omitempty"`
	// Optional hints passed along from the Business Rule or the reconciler;
	// the processor always fetches the record and trusts only what it reads.
	Number      string `json:"number,omitempty"`
	SysModCount *int   `json:"sys_mod_count,omitempty"`
	Operation   string `json:"operation,omitempty"`
}
