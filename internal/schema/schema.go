// Package schema defines snowgate's DynamoDB tables and SQS queues once, as
// plain data. Local provisioning (make dev), the test harness and the CDK
// stack all build from these definitions, and a test checks the synthesized
// template against them, so the three can never drift apart.
//
// The package has no dependencies so that the CDK module can import it.
package schema

import "time"

// KeyType is a DynamoDB scalar attribute type.
type KeyType string

// The attribute types snowgate keys use.
const (
	String KeyType = "S"
	Number KeyType = "N"
)

// Key is one attribute of a key schema.
type Key struct {
	Name string
	Type KeyType
}

// Index is a global secondary index.
type Index struct {
	Name         string
	PartitionKey Key
	SortKey      *Key
	// Include, when set, is the index's projection (INCLUDE): the table's
	// and the index's keys and these attributes. Nil projects all
	// attributes (ALL).
	Include []string
}

// Table is a DynamoDB table in on-demand mode.
type Table struct {
	// ID names the table in code, in CDK logical ids and in environment variables.
	ID           string
	PartitionKey Key
	SortKey      *Key
	Indexes      []Index
	// TTLAttribute, when set, holds an epoch-seconds expiry.
	TTLAttribute string
}

// Attribute names shared by items and indexes.
const (
	AttrPK        = "pk"
	AttrKind      = "kind"
	AttrGSI1PK    = "gsi1pk"
	AttrGSI1SK    = "gsi1sk"
	AttrDuePK     = "due_pk"
	AttrDueAt     = "due_at"
	AttrExpiresAt = "expires_at"
	// AttrOpenPK and AttrOpenSK are set only on a ticket whose job is open
	// ("OPEN#"+gateway id, and table#sys_id), so IndexOpenJobs holds
	// nothing else.
	AttrOpenPK = "open_pk"
	AttrOpenSK = "open_sk"
	// AttrStuckPK and AttrStuckAt are set only on a ticket whose decision
	// has not completed ("STUCK#"+gateway id, and the time from which the
	// reconciler re-enqueues it), so IndexStuck holds nothing else.
	AttrStuckPK = "stuck_pk"
	AttrStuckAt = "stuck_at"
)

// Index names.
const (
	// IndexByKind lists registry items of one kind (gateways, webhooks) in id order.
	IndexByKind = "by_kind"
	// IndexByGateway lists a gateway's tickets by last update time,
	// projecting TicketListAttributes only: what a listing shows and
	// filters on. A reader that needs more reads the item.
	IndexByGateway = "gateway_tickets"
	// IndexByGatewayRetired is the index IndexByGateway replaces, which
	// projected every attribute; nothing reads it. DynamoDB cannot change
	// an index's projection, and CloudFormation creates or deletes one
	// index per table update: this release adds the new index and keeps
	// the old one, the next one deletes it.
	IndexByGatewayRetired = "by_gateway"
	// IndexDue lists deferred tickets by the time they become due (sparse).
	IndexDue = "due"
	// IndexOpenJobs lists a gateway's tickets with an open job (sparse):
	// the reconciler re-checks them whatever the gateway's filters say.
	IndexOpenJobs = "open_jobs"
	// IndexStuck lists a gateway's tickets whose last attempt did not
	// complete a decision (sparse, by the time they count as stuck): the
	// reconciler re-enqueues them.
	IndexStuck = "stuck"
)

// Registry holds gateways, webhooks and the path items ingest reads.
var Registry = Table{
	ID:           "Registry",
	PartitionKey: Key{AttrPK, String},
	Indexes: []Index{
		{Name: IndexByKind, PartitionKey: Key{AttrKind, String}, SortKey: &Key{AttrPK, String}},
	},
}

// TicketListAttributes are the ticket attributes IndexByGateway projects:
// those `2501 infra ticket list` prints and filters on (status, the job's
// state), and the item's identity. The job is a map (its state, events and
// results, a few hundred bytes); a ticket's mirror, its prior and its
// journal position stay out.
var TicketListAttributes = []string{
	"gateway_id", "table", "sys_id", "number", "sys_mod_count", "status", "reason",
	"last_outcome", "job", "job_id", "updated_at",
}

// State holds tickets, watermarks and dedup fingerprints.
var State = Table{
	ID:           "State",
	PartitionKey: Key{AttrPK, String},
	Indexes: []Index{
		{Name: IndexByGateway, PartitionKey: Key{AttrGSI1PK, String}, SortKey: &Key{AttrGSI1SK, String}, Include: TicketListAttributes},
		{Name: IndexByGatewayRetired, PartitionKey: Key{AttrGSI1PK, String}, SortKey: &Key{AttrGSI1SK, String}},
		{Name: IndexDue, PartitionKey: Key{AttrDuePK, String}, SortKey: &Key{AttrDueAt, String}},
		{Name: IndexOpenJobs, PartitionKey: Key{AttrOpenPK, String}, SortKey: &Key{AttrOpenSK, String}},
		{Name: IndexStuck, PartitionKey: Key{AttrStuckPK, String}, SortKey: &Key{AttrStuckAt, String}},
	},
	TTLAttribute: AttrExpiresAt,
}

// ReplayKeyPrefix starts the partition key of the replay markers ingest
// writes in the state table (package ingest/replay); ingest's role may
// write those keys and no other.
const ReplayKeyPrefix = "REPLAY#"

// Tables lists every table.
var Tables = []Table{Registry, State}

// Queue is an SQS standard queue with a dead-letter queue.
type Queue struct {
	ID string
	// VisibilityTimeout must be at least six times the consumer's timeout.
	VisibilityTimeout time.Duration
	Retention         time.Duration
	// MaxReceiveCount is how many receives before a message moves to the
	// DLQ. On the queues snowgate consumes it is a backstop computed from
	// the retry policy (RetryReceives): a message gives up by age.
	MaxReceiveCount int
	DLQRetention    time.Duration
}

// DLQID names the queue's dead-letter queue.
func (q Queue) DLQID() string { return q.ID + "DLQ" }

// Retrying a message that failed transiently (package redelivery): its next
// delivery waits RetryBase·2^(n−1) after its n-th receive, at most
// RetryCap, drawn from the upper half of that (equal jitter), or longer
// when ServiceNow asked for it (Retry-After); a message older than
// RetryHorizon that fails again is dead-lettered.
const (
	RetryBase = time.Minute
	RetryCap  = time.Hour
	// RetryHorizon is how long a change is retried before it goes to the
	// dead-letter queue: long enough for an hour-long rate limit or an
	// outage of most of a day. The processor and the writer can be given
	// a shorter one (SNOWGATE_RETRY_HORIZON), not a longer one: the
	// redrive count is computed from this one.
	RetryHorizon = 24 * time.Hour
	// UnpacedReceives is the redrive count's margin for receives the
	// backoff does not pace: an invocation that timed out or crashed, a
	// visibility change that failed (the queue's visibility timeout, a
	// few minutes, then paces the retry).
	UnpacedReceives = 10
)

// RetryReceives is the most receives a message retried by the backoff can
// spend within the horizon: its first, then one after each wait, every wait
// at the short end of its jitter (half the backoff). With the defaults,
// waits of at least 30 s, 1, 2, 4, 8 and 16 min (31.5 min), then 30 min
// each: 1 + 6 + 46 = 53 receives by 24 h.
func RetryReceives(horizon, base, limit time.Duration) int {
	receives := 1
	var elapsed time.Duration
	for w := base; ; w = min(2*w, limit) {
		if elapsed+w/2 > horizon || w <= 0 {
			return receives
		}
		elapsed += w / 2
		receives++
	}
}

// ConsumerMaxReceiveCount is the redrive count of the queues whose
// consumers retry by age (intake, results): the receives of RetryReceives
// plus UnpacedReceives, 63 with the defaults. Reaching it before the
// horizon takes ten receives the backoff did not pace; a message given up
// (past the horizon, or poison) is made visible at once and reaches it
// within seconds.
var ConsumerMaxReceiveCount = RetryReceives(RetryHorizon, RetryBase, RetryCap) + UnpacedReceives

// ProcessorTimeout is the processor function's timeout; the intake queue's
// visibility timeout is derived from it as AWS recommends (6x).
const ProcessorTimeout = 30 * time.Second

// Intake carries sys_ids from ingest and the reconciler to the processor.
var Intake = Queue{
	ID:                "Intake",
	VisibilityTimeout: 6 * ProcessorTimeout,
	Retention:         4 * 24 * time.Hour,
	MaxReceiveCount:   ConsumerMaxReceiveCount,
	DLQRetention:      14 * 24 * time.Hour,
}

// Dispatch carries job requests to the automation engine; its redrive
// count bounds the engine's retries, not snowgate's.
var Dispatch = Queue{
	ID:                "Dispatch",
	VisibilityTimeout: 5 * time.Minute,
	Retention:         4 * 24 * time.Hour,
	MaxReceiveCount:   5,
	DLQRetention:      14 * 24 * time.Hour,
}

// WriterTimeout is the writer function's timeout; the results queue's
// visibility timeout is six times it, as AWS advises for an event source.
const WriterTimeout = 30 * time.Second

// Results carries the engine's job results to the writer.
var Results = Queue{
	ID:                "Results",
	VisibilityTimeout: 6 * WriterTimeout,
	Retention:         4 * 24 * time.Hour,
	MaxReceiveCount:   ConsumerMaxReceiveCount,
	DLQRetention:      14 * 24 * time.Hour,
}

// Queues lists every queue: provisioning, make dev and the CDK stack each
// create every one of them with its dead-letter queue.
var Queues = []Queue{Intake, Dispatch, Results}

// Environment variables carrying generated resource names to every program.
const (
	EnvRegistryTable    = "SNOWGATE_REGISTRY_TABLE"
	EnvStateTable       = "SNOWGATE_STATE_TABLE"
	EnvIntakeQueueURL   = "SNOWGATE_INTAKE_QUEUE_URL"
	EnvIntakeDLQURL     = "SNOWGATE_INTAKE_DLQ_URL"
	EnvDispatchQueueURL = "SNOWGATE_DISPATCH_QUEUE_URL"
	EnvDispatchDLQURL   = "SNOWGATE_DISPATCH_DLQ_URL"
	EnvResultsQueueURL  = "SNOWGATE_RESULTS_QUEUE_URL"
	EnvResultsDLQURL    = "SNOWGATE_RESULTS_DLQ_URL"
	EnvAPIURL           = "SNOWGATE_API_URL"
	EnvStack            = "SNOWGATE_STACK"
	// EnvSecretPrefix is the Secrets Manager name prefix for gateway
	// credentials and signing keys; IAM grants are scoped to it.
	EnvSecretPrefix = "SNOWGATE_SECRET_PREFIX"
	// EnvMaxPause caps how long a gateway's budget pauses it, and with it
	// how long a failed message waits for a Retry-After (package connect,
	// package redelivery); for a system run in compressed time.
	EnvMaxPause = "SNOWGATE_MAX_PAUSE"
)

// DefaultStackName is the CloudFormation stack the CLI reads outputs from.
const DefaultStackName = "snowgate"

// DefaultSecretPrefix prefixes every secret snowgate creates.
const DefaultSecretPrefix = "snowgate/"
