package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/snowgate/snowgate/internal/contract"
	"github.com/snowgate/snowgate/internal/pipeline"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

// The fuzz test runs many thousands of batches, so, as the ingest
// fuzzer does, it uses in-memory implementations of the pipeline's own
// small interfaces (never of the AWS SDK), and the real ServiceNow client
// over an in-memory transport: what the fuzzer writes as the Table API's
// answer is decoded by the client and state.VersionOf as in production.
// The emulator tests cover the real stores.

const (
	fuzzGateway = "gtw_00000000-0000-4000-8000-0000000000f0"
	fuzzSysID   = "0123456789abcdef0123456789abcdef"
)

type memGateways struct{}

func (memGateways) Gateway(_ context.Context, id string) (registry.Gateway, error) {
	if id != fuzzGateway {
		return registry.Gateway{}, registry.ErrNotFound
	}
	return registry.Gateway{ID: fuzzGateway, Name: "fuzz", Active: true, InstanceURL: "https://fuzz.service-now.com"}, nil
}

// memTickets is a ticket store that keeps the rules the pipeline relies
// on (one claim per version, stale and unchanged versions, a 404 for a
// record never mirrored stores nothing) and counts every write.
type memTickets struct {
	mu     sync.Mutex
	t      map[state.Key]state.Ticket
	fps    map[string]state.First
	jobs   map[string]state.IndexedJob
	writes int
}

func (m *memTickets) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.t, m.fps, m.jobs, m.writes = map[state.Key]state.Ticket{}, map[string]state.First{}, map[string]state.IndexedJob{}, 0
}

func (m *memTickets) put(k state.Key, t state.Ticket) {
	t.GatewayID, t.Table, t.SysID = k.GatewayID, k.Table, k.SysID
	t.UpdatedAt = time.Now()
	if t.FirstSeenAt.IsZero() {
		t.FirstSeenAt = t.UpdatedAt
	}
	m.t[k] = t
	m.writes++
}

func (m *memTickets) Claim(_ context.Context, c state.Claim) (state.Ticket, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, ok := m.t[c.Key]
	if ok && prev.ContentHash != "" {
		switch {
		case prev.ClaimToken != "" || prev.SysModCount >= c.SysModCount:
			return prev, state.ErrStale
		case prev.ContentHash == c.Mirror.Hash() && !prev.Basis().JournalMatters():
			return prev, state.ErrUnchanged
		}
	}
	next := prev
	next.Mirror, next.SysModCount, next.SysUpdatedOn, next.ContentHash = c.Mirror, c.SysModCount, c.SysUpdatedOn, c.Mirror.Hash()
	next.Status, next.ClaimToken, next.Source, next.CreatedOn = state.StatusProcessing, c.Token, c.Source, c.CreatedOn
	next.Prior = &state.Prior{Status: prev.Status, Reason: prev.Reason, Mirror: prev.Mirror, ContentHash: prev.ContentHash}
	m.put(c.Key, next)
	return prev, nil
}

func (m *memTickets) Finish(_ context.Context, k state.Key, token string, r state.Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.t[k]
	if !ok || t.ClaimToken != token {
		return state.ErrClaimLost
	}
	t.Status, t.Reason, t.ClaimToken, t.Ending = r.Status, r.Reason, "", nil
	v := max(r.Version, r.SeenVersion)
	t.DecidedVersion = &v
	switch {
	case r.Job != nil:
		t.Job = r.Job
	case r.Base != nil && (len(r.Events) > 0 || r.EndJob != ""):
		j := r.After(time.Now())
		t.Job = &j
	}
	m.put(k, t)
	return nil
}

func (m *memTickets) ReleaseUntil(_ context.Context, k state.Key, token, reason string, prior *state.Prior, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.t[k]
	if !ok || t.ClaimToken != token {
		return state.ErrClaimLost
	}
	t.Status, t.Reason, t.ClaimToken, t.Prior = state.StatusRetrying, reason, "", prior
	m.put(k, t)
	return nil
}

func (m *memTickets) RecordFailure(_ context.Context, k state.Key, reason string, permanent bool, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.t[k]
	t.LastError = reason
	if permanent {
		t.Status, t.Reason = state.StatusFailed, reason
	} else if t.Status == "" {
		t.Status, t.Reason = state.StatusRetrying, reason
	}
	m.put(k, t)
	return nil
}

func (m *memTickets) DeferFailure(ctx context.Context, k state.Key, reason, source string, _ time.Time) error {
	return m.RecordFailure(ctx, k, reason, false, source)
}

func (m *memTickets) RecordGone(ctx context.Context, k state.Key, reason, source string) error {
	m.mu.Lock()
	t, ok := m.t[k]
	if !ok || t.ContentHash == "" {
		delete(m.t, k)
		m.mu.Unlock()
		return state.ErrNotFound
	}
	m.mu.Unlock()
	return m.RecordFailure(ctx, k, reason, true, source)
}

func (m *memTickets) ClaimFingerprint(_ context.Context, gatewayID, fp string, owner state.First, _ time.Duration) (state.First, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if first, ok := m.fps[gatewayID+fp]; ok && first.SysID != owner.SysID {
		return first, true, nil
	}
	m.fps[gatewayID+fp] = owner
	return owner, false, nil
}

func (m *memTickets) IndexJob(_ context.Context, jobID string, k state.Key) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j, ok := m.jobs[jobID]; ok && j.Key != k {
		return errors.New("the id belongs to another ticket")
	}
	m.jobs[jobID] = state.IndexedJob{Key: k, CreatedAt: time.Now()}
	return nil
}

func (m *memTickets) MarkEnding(_ context.Context, k state.Key, token string, e state.Ending) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.t[k]
	if !ok || t.ClaimToken != token {
		return state.ErrClaimLost
	}
	t.Ending = &e
	m.put(k, t)
	return nil
}

func (m *memTickets) IndexedJob(_ context.Context, jobID string) (state.IndexedJob, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[jobID]
	if !ok {
		return state.IndexedJob{}, state.ErrNotFound
	}
	return j, nil
}

func (m *memTickets) DecidedVersion(_ context.Context, k state.Key) (int, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.t[k]
	if !ok || t.DecidedVersion == nil {
		return 0, false, nil
	}
	return *t.DecidedVersion, true, nil
}

// memDispatch holds every event to the contract and to SQS's size limit.
type memDispatch struct {
	mu   sync.Mutex
	errs []string
}

func (d *memDispatch) SendJSON(_ context.Context, body any, attrs map[string]string) error {
	b, err := json.Marshal(body)
	size := len(b)
	for k, v := range attrs {
		size += len(k) + len(v) + len("String")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case err != nil:
		d.errs = append(d.errs, "encode: "+err.Error())
	case size > sqsMaxMessage:
		d.errs = append(d.errs, "event of "+strconv.Itoa(size)+" bytes, over SQS's limit")
	default:
		if err := contract.ValidateEvent(b); err != nil {
			d.errs = append(d.errs, "outside the contract: "+err.Error())
		}
	}
	return nil
}

// answer is what the instance answers to a record's GET.
type answer struct {
	mu     sync.Mutex
	status int
	body   []byte
}

func (a *answer) RoundTrip(r *http.Request) (*http.Response, error) {
	a.mu.Lock()
	status, body := a.status, a.body
	a.mu.Unlock()
	if strings.Contains(r.URL.Path, "/sys_journal_field") {
		status, body = http.StatusOK, []byte(`{"result":[]}`)
	}
	h := http.Header{"Content-Type": []string{"application/json"}}
	if status == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
}

type fuzzConnector struct{ inst *servicenow.Client }

func (c fuzzConnector) Connect(context.Context, registry.Gateway) (pipeline.Instance, error) {
	return c.inst, nil
}
func (fuzzConnector) Reset(registry.Gateway) {}

// logLine is what the fuzzer reads of a message's log line.
type logLine struct {
	Msg       string `json:"msg"`
	MessageID string `json:"message_id"`
	Status    string `json:"status"`
	Reason    string `json:"reason"`
	Retry     bool   `json:"retry"`
}

// fuzzStatuses are the answers the fuzzer picks from (by index).
var fuzzStatuses = []int{200, 200, 200, 200, 404, 403, 429, 500, 401, 502}

// outcomeStatuses are the statuses a message's log line may show.
var outcomeStatuses = []string{
	state.StatusAccepted, pipeline.StatusStale, pipeline.StatusUnchanged, state.StatusOutOfScope,
	state.StatusDeduplicated, state.StatusDeferred, state.StatusExpired, pipeline.StatusFailed,
	state.StatusAwaitingMention, pipeline.StatusWaiting, pipeline.StatusUnknownRecord,
}

// FuzzProcess: whatever the SQS body and attributes, and whatever
// ServiceNow answers for the record (odd field types, sizes, envelopes,
// statuses), the processor does not panic, never fails the batch, reports
// every message done or as a batch item failure with a reason, stores
// nothing for a message that is not an intake message, sends only events
// within the contract and SQS's limit, and stores tickets DynamoDB takes.
func FuzzProcess(f *testing.F) {
	valid := `{"gateway_id":"` + fuzzGateway + `","table":"incident","sys_id":"` + fuzzSysID + `","source":"webhook"}`
	hinted := `{"gateway_id":"` + fuzzGateway + `","table":"change_request","sys_id":"` + fuzzSysID + `","source":"reconcile","sys_mod_count":3}`
	record := `{"result":{"sys_id":"` + fuzzSysID + `","number":"INC0010001","sys_mod_count":"4","sys_updated_on":"2026-03-01 10:00:00",` +
		`"sys_created_on":"2026-03-01 09:00:00","state":"2","priority":"2","active":"true","short_description":"Router down",` +
		`"description":"BGP flaps","assignment_group":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01","cmdb_ci":"ci-1","u_environment":"production"}}`
	change := `{"result":{"sys_id":"` + fuzzSysID + `","number":"CHG0030001","sys_mod_count":"5","sys_updated_on":"2026-03-01 10:00:00",` +
		`"state":"-2","approval":"approved","type":"normal","active":"true","start_date":"2026-03-01 08:00:00","end_date":"2099-01-01 00:00:00"}}`
	odd := `{"result":{"sys_id":"` + fuzzSysID + `","number":7,"sys_mod_count":"x","active":{"link":"l","value":"true"},` +
		`"assignment_group":{"link":"https://x/api","value":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01"},"description":null,"state":[1,2]}}`
	huge := `{"result":{"sys_id":"` + fuzzSysID + `","number":"INC1","sys_mod_count":"1","sys_updated_on":"2026-03-01 10:00:00","active":"true",` +
		`"description":"` + strings.Repeat(`<\u0001>`, 1<<16) + `","short_description":"` + strings.Repeat("é", 1<<13) + `"}}`
	f.Add(valid, "1", "", uint8(0), []byte(record))
	f.Add(hinted, "1", "", uint8(1), []byte(change))
	f.Add(hinted, "2", "1700000000000", uint8(1), []byte(change))
	f.Add(valid, "1", "", uint8(2), []byte(odd))
	f.Add(valid, "1", "", uint8(3), []byte(huge))
	f.Add(valid, "1", "", uint8(4), []byte(`{"error":{"message":"No Record found","detail":"ACL"},"status":"failure"}`))
	f.Add(valid, "3", "", uint8(5), []byte(`{"error":{"message":"Insufficient rights to query records"},"status":"failure"}`))
	f.Add(valid, "9", "1", uint8(6), []byte(`{}`))
	f.Add(valid, "1", "", uint8(0), []byte(`<html><body>Your instance is hibernating</body></html>`))
	// Found by the fuzzer: a message without a source made a job event the
	// contract refuses. It is poison now.
	f.Add(`{"gateway_id":"`+fuzzGateway+`","table":"incident","sys_id":"`+fuzzSysID+`"}`, "1", "", uint8(0), []byte(record))
	f.Add(valid, "1", "", uint8(0), []byte(record[:len(record)/2]+`{"error":{"message":"Transaction cancelled: maximum execution time exceeded"},"status":"failure"}`))
	f.Add(`{"gateway_id": 42`, "1", "", uint8(0), []byte(record))
	f.Add(`{"gateway_id":"gtw_x","table":"sys_user","sys_id":"../../x"}`, "x", "-5", uint8(0), []byte(record))
	f.Add(`null`, "", "", uint8(0), []byte(`{"result":[]}`))

	tickets := &memTickets{}
	dispatch := &memDispatch{}
	ans := &answer{}
	inst, err := servicenow.New("https://fuzz.service-now.com", servicenow.BasicAuth("svc", "pw"),
		servicenow.WithHTTPClient(&http.Client{Transport: ans}), servicenow.WithMaxAttempts(1), servicenow.WithoutThrottleRetries())
	if err != nil {
		f.Fatal(err)
	}
	logs := &bytes.Buffer{}
	p := pipeline.New(pipeline.Deps{Gateways: memGateways{}, Tickets: tickets, Dispatch: dispatch, ServiceNow: fuzzConnector{inst: inst}},
		pipeline.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil)), GatewayTTL: time.Hour})

	f.Fuzz(func(t *testing.T, body, receives, sent string, status uint8, response []byte) {
		tickets.reset()
		dispatch.errs = nil
		logs.Reset()
		ans.mu.Lock()
		ans.status, ans.body = fuzzStatuses[int(status)%len(fuzzStatuses)], response
		ans.mu.Unlock()
		attrs := map[string]string{"ApproximateReceiveCount": receives, "SentTimestamp": sent}
		// The same body twice: one record's messages are fetched once.
		recs := []events.SQSMessage{
			{MessageId: "m1", Body: body, Attributes: attrs, EventSource: "aws:sqs"},
			{MessageId: "m2", Body: body, Attributes: attrs, EventSource: "aws:sqs"},
		}
		resp, err := p.Handle(context.Background(), events.SQSEvent{Records: recs})
		if err != nil {
			t.Fatalf("Handle failed the batch: %v", err)
		}
		var failed []string
		for _, f := range resp.BatchItemFailures {
			failed = append(failed, f.ItemIdentifier)
		}
		var lines []logLine
		dec := json.NewDecoder(bytes.NewReader(logs.Bytes()))
		for dec.More() {
			var l logLine
			if err := dec.Decode(&l); err != nil {
				t.Fatalf("log line: %v", err)
			}
			if l.Msg == "message processed" {
				lines = append(lines, l)
			}
		}
		if len(lines) != len(recs) {
			t.Fatalf("%d log lines for %d messages:\n%s", len(lines), len(recs), logs)
		}
		poison := false
		for _, l := range lines {
			if strings.Contains(l.Reason, "internal error") {
				t.Fatalf("message %s panicked: %s", l.MessageID, logs)
			}
			if !slices.Contains(outcomeStatuses, l.Status) || l.Reason == "" && l.Status != pipeline.StatusUnchanged {
				t.Errorf("message %s: status %q, reason %q", l.MessageID, l.Status, l.Reason)
			}
			if l.Retry != slices.Contains(failed, l.MessageID) {
				t.Errorf("message %s retry=%v but batch item failures %v", l.MessageID, l.Retry, failed)
			}
			if l.Status == pipeline.StatusWaiting && !l.Retry {
				t.Errorf("message %s waiting but not retried", l.MessageID)
			}
			poison = poison || l.Reason == "not an intake message"
		}
		tickets.mu.Lock()
		defer tickets.mu.Unlock()
		if poison && tickets.writes != 0 {
			t.Errorf("not an intake message, yet %d writes to the ticket store", tickets.writes)
		}
		for k, tk := range tickets.t {
			if b, _ := json.Marshal(tk); len(b) > 350_000 {
				t.Errorf("ticket %v of %d bytes: DynamoDB takes 400 KB", k, len(b))
			}
		}
		if len(dispatch.errs) > 0 {
			t.Errorf("events: %v", dispatch.errs)
		}
	})
}
