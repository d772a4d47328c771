package e2e_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/ingest"
	"github.com/snowgate/snowgate/internal/localrun"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/webhook"
)

// The abuse run's bounds: at most floodRequests calls in floodFor, from
// floodWorkers concurrent callers, all on loopback.
const (
	floodRequests = 20000
	floodFor      = 20 * time.Second
	floodWorkers  = 4
	// floodPool is how many well-formed unknown paths the flood repeats
	// (the rest of its well-formed paths are new each time).
	floodPool = 64
	// abuseIncidents and abuseChanges are the legitimate records made
	// while the flood runs, one every abuseEvery.
	abuseIncidents, abuseChanges = 12, 12
	abuseEvery                   = 500 * time.Millisecond
	// replays is how often the captured request is sent again within
	// its timestamp's tolerance.
	replays = 8
)

// TestAbuseFloodAndReplay: while a gateway's Business Rules post the
// changes of 24 records, a bounded flood of calls hits the ingest route:
// random well-formed paths (most new, some repeated), malformed paths,
// wrong methods and media types, random and oversized bodies, and a few
// forged signatures and secrets on the webhooks' real paths. One signed
// call of the rule is captured on its way and sent again, as is and with
// its timestamp moved outside the tolerance. Every record gets one job,
// created once; no flood call and no replay is enqueued or reaches the
// instance; the replays within the tolerance are answered duplicate, the
// others 401. The run reports the flood's cost downstream: the ingest
// function's DynamoDB reads and writes, Secrets Manager and SQS calls,
// and ingest's answers by status. Local system only: the ingest
// function's AWS calls are counted by a hop in front of the emulator.
func TestAbuseFloodAndReplay(t *testing.T) {
	parallel(t)
	if remoteMode() {
		t.Skip("the abuse run counts the ingest function's AWS calls through a local hop: local system only")
	}
	built := time.Now()
	bootstraps(t) // once per test binary: not part of the run's time
	building := time.Since(built)
	start := time.Now()
	var hop *awsHop
	s := newSystem(t, func(o *localOptions) {
		o.ingestEndpoint = func(t *testing.T, emulatorURL string) string {
			hop = newAWSHop(t, emulatorURL)
			return hop.url
		}
	})
	// The rules post through a tap, which keeps every call they make.
	tp := newTap(t, s.apiURL)
	s.env[schema.EnvAPIURL] = tp.url
	st := s.createGateway(t, true)
	gw := st.gateway.ID
	registryTable, stateTable := s.env[schema.EnvRegistryTable], s.env[schema.EnvStateTable]
	simBefore := s.sim.Stats()
	callsBefore := hop.snapshot()
	startup := time.Since(start)

	f := &flood{
		apiURL: strings.TrimSuffix(s.apiURL, "/") + ingest.PathPrefix, realSigned: st.change.Path, realSecret: st.incident.Path,
		client: &http.Client{Transport: hopTransport(), Timeout: 30 * time.Second}, statuses: map[int]int{},
	}
	f.pool = make([]string, floodPool)
	pr := rand.New(rand.NewPCG(1, 2))
	for i := range f.pool {
		f.pool[i] = randHex(pr, 24)
	}
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		f.run(t, floodRequests, floodFor, floodWorkers)
	}()

	// The legitimate changes, one every abuseEvery, while the flood runs.
	// Once the first change request's call is accepted, it is captured
	// and sent again, the flood still running.
	ids := map[string][]string{}
	replayAnswers := map[string]int{}
	var captured tapped
	now := time.Now()
	for i := range abuseIncidents + abuseChanges {
		table, fields := "incident", incident(t, st.group, fmt.Sprint("Abuse run: link down on switch ", i))
		if i%2 == 1 {
			table, fields = "change_request", map[string]string{
				"short_description": unique(t, fmt.Sprint("Abuse run: reboot host ", i)), "type": "standard", "approval": "approved",
				"state": "-1", "assignment_group": st.group, "u_environment": "production",
				"start_date": simTime(now.Add(-time.Hour)), "end_date": simTime(now.Add(2 * time.Hour)),
			}
		}
		ids[table] = append(ids[table], s.insert(t, table, fields)["sys_id"])
		if i == 1 {
			s.eventually(t, "a signed call of the change requests' rule to be accepted", time.Minute, func() (bool, string) {
				for _, r := range tp.requests(st.change.Path) {
					if r.status == http.StatusAccepted {
						captured = r
						return true, ""
					}
				}
				return false, fmt.Sprintf("%d calls of the rule", len(tp.requests(st.change.Path)))
			})
			for range replays / 2 {
				code, body := s.sendAgain(t, captured, nil)
				replayAnswers[fmt.Sprintf("within tolerance, during the flood: %d %s", code, body)]++
			}
		}
		time.Sleep(abuseEvery)
	}
	<-floodDone
	for range replays - replays/2 {
		code, body := s.sendAgain(t, captured, nil)
		replayAnswers[fmt.Sprintf("within tolerance, after the flood: %d %s", code, body)]++
	}
	// The same call as it would come from a capture older (or dated
	// later) than the tolerance: same id and body, a timestamp outside
	// the tolerance with its own valid signature; and the captured call
	// with only its timestamp changed, the signature left as it was.
	key, err := webhook.DecodeSigningKey(st.change.Secret)
	if err != nil {
		t.Fatalf("the change requests' webhook signing key: %v", err)
	}
	id := captured.header.Get(ingest.HeaderWebhookID)
	for _, c := range []struct {
		name   string
		shift  time.Duration
		resign bool
	}{
		{"16 min old, signed", -16 * time.Minute, true},
		{"16 min ahead, signed", 16 * time.Minute, true},
		{"timestamp moved, signature kept", time.Minute, false},
	} {
		ts := strconv.FormatInt(time.Now().Add(c.shift).Unix(), 10)
		code, body := s.sendAgain(t, captured, func(h http.Header) {
			h.Set(ingest.HeaderWebhookTimestamp, ts)
			if c.resign {
				h.Set(ingest.HeaderWebhookSignature, webhook.Sign(key, id, ts, captured.body))
			}
		})
		replayAnswers[fmt.Sprintf("%s: %d %s", c.name, code, body)]++
		if code != http.StatusUnauthorized {
			t.Errorf("the captured call, %s: %d %s; want 401", c.name, code, body)
		}
	}
	for answer, n := range replayAnswers {
		if strings.HasPrefix(answer, "within") && !strings.HasSuffix(answer, `: 200 {"status":"duplicate"}`) {
			t.Errorf("the captured call sent again %d times %s; want 200 duplicate", n, answer)
		}
	}

	// Every record has one job, created once, and the gateway has no
	// other ticket.
	s.waitAllSettled(t, gw, ids, 2*time.Minute)
	evs, resent := distinct(s.events(t, gw))
	created := map[string]int{}
	for _, ev := range ofType(evs, queue.EventJobCreated) {
		created[ev.SysID]++
	}
	records := 0
	for _, list := range ids {
		for _, id := range list {
			records++
			if created[id] != 1 {
				t.Errorf("record %s: %d job.created events; want 1", id, created[id])
			}
			delete(created, id)
		}
	}
	if len(created) > 0 {
		t.Errorf("job.created for records the test did not make: %v", created)
	}
	if tickets := s.tickets(t, gw); len(tickets) != records {
		t.Errorf("tickets = %d; want %d, one per record", len(tickets), records)
	}
	for _, q := range []string{schema.EnvIntakeDLQURL, schema.EnvDispatchDLQURL, schema.EnvResultsDLQURL} {
		if n := s.depth(t, q); n != 0 {
			t.Errorf("%s queue holds %d messages; want 0", q, n)
		}
	}

	// What the rules sent, and what ingest sent on: one message per call
	// accepted (202), none for the flood, none for a replay. The engine's
	// answers are written back to the records, whose rules post again
	// (echoes), so the two are compared once they agree or time is up.
	var ruleCalls []tapped
	var calls map[awsCall]int
	deadline := time.Now().Add(30 * time.Second)
	for {
		ruleCalls = slices.Concat(tp.requests(st.incident.Path), tp.requests(st.change.Path))
		calls = callsSince(hop.snapshot(), callsBefore)
		if countCalls(calls, "SendMessage", "") == answeredWith(ruleCalls, http.StatusAccepted)+f.status(http.StatusAccepted) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	ruleStatuses := map[int]int{}
	for _, r := range ruleCalls {
		ruleStatuses[r.status]++
	}
	ok := ruleStatuses[http.StatusAccepted] + ruleStatuses[http.StatusOK]
	for code, n := range ruleStatuses {
		switch {
		case code == http.StatusAccepted, code == http.StatusOK:
		case code >= 400 && code < 500:
			t.Errorf("%d calls of the rules answered %d; want 202 (or 200 duplicate for the simulator's resends)", n, code)
		default: // a 5xx or no answer: the machine, not the caller
			t.Logf("%d calls of the rules answered %d (no answer: 0)", n, code)
		}
	}
	sends := countCalls(calls, "SendMessage", "") + countCalls(calls, "SendMessageBatch", "")
	if want := ruleStatuses[http.StatusAccepted]; sends != want || f.status(http.StatusAccepted) != 0 {
		t.Errorf("ingest sent %d intake messages; want %d, one per accepted call of the rules (flood calls accepted: %d)",
			sends, want, f.status(http.StatusAccepted))
	}
	simAfter := s.sim.Stats()
	notFound := simAfter.Requests[snowsim.RequestKey{Method: http.MethodGet, Status: http.StatusNotFound}] -
		simBefore.Requests[snowsim.RequestKey{Method: http.MethodGet, Status: http.StatusNotFound}]
	if notFound != 0 {
		t.Errorf("the instance answered %d reads with 404: something read a record the test did not make", notFound)
	}
	fnName := s.fnPrefix + localrun.Ingest
	byStatus := s.logs.count("ingest", map[string]string{"process": fnName}, "status")
	byReason := s.logs.count("ingest", map[string]string{"process": fnName}, "reason")
	started := s.logs.count("function process started", map[string]string{"function": fnName}, "environment")
	restarts := 0
	for _, n := range started {
		restarts += n - 1
	}
	if restarts > 0 {
		t.Errorf("the ingest function's process was started again %d times: it exited under the flood", restarts)
	}

	latency := map[string]string{}
	for _, outcome := range []string{"accepted", "duplicate", "unauthorized"} {
		v := s.logs.values("ingest", "latency_ms", map[string]string{"process": fnName, "outcome": outcome})
		latency[outcome] = fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms", quantile(v, 0.5), quantile(v, 0.99), quantile(v, 1))
	}
	reads := countCalls(calls, "GetItem", registryTable)
	t.Logf("abuse: flood %d calls in %v (%.0f/s, %d workers): %d with a new well-formed path, %d with one of %d repeated, "+
		"%d malformed, %d wrong method or type, %d forged on the real paths; client saw %v, %d errors",
		f.sent.Load(), f.took.Round(time.Millisecond), float64(f.sent.Load())/f.took.Seconds(), floodWorkers,
		f.fresh.Load(), f.pooled.Load(), floodPool, f.malformed.Load(), f.wrongKind.Load(), f.forged.Load(), f.statusMap(), f.errors.Load())
	t.Logf("abuse: %d records, %d calls of the rules (echoes of the writer's writes included), %d answered 2xx (%.1f %%), statuses %v; "+
		"%d job.created, one per record (%d events sent again with a known id); %d tickets",
		records, len(ruleCalls), ok, 100*float64(ok)/float64(max(len(ruleCalls), 1)), ruleStatuses, records, resent, records)
	t.Logf("abuse: the captured call sent again: %v", replayAnswers)
	t.Logf("abuse: ingest's AWS calls during the run: %d registry GetItem (%.2f per new well-formed flood path), %d state table PutItem (replay markers), "+
		"%d Secrets Manager GetSecretValue, %d SQS SendMessage; all: %v",
		reads, float64(reads)/float64(max(f.fresh.Load(), 1)), countCalls(calls, "PutItem", stateTable),
		countCalls(calls, "GetSecretValue", ""), sends, calls)
	t.Logf("abuse: ingest's answers by status %v, by reason %v; its own time per call by outcome %v; "+
		"the instance answered %d reads with 404 (flood calls reaching it); ingest restarts %d; "+
		"functions built in %v, system started in %v, run's wall time %v",
		byStatus, byReason, latency, notFound, restarts, building.Round(time.Millisecond), startup.Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond))
}

// values returns a numeric field of the JSON log lines with message msg
// whose fields equal match, in the order logged.
func (l *logFile) values(msg, field string, match map[string]string) []float64 {
	var out []float64
	for _, line := range l.lines(msg, match) {
		if v, ok := line[field].(float64); ok {
			out = append(out, v)
		}
	}
	return out
}

// quantile returns the q-quantile of vs (nearest rank), 0 for none.
func quantile(vs []float64, q float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	vs = slices.Clone(vs)
	slices.Sort(vs)
	return vs[min(len(vs)-1, int(q*float64(len(vs))))]
}

// sendAgain posts a captured call of a rule to the ingest route again, its
// headers changed by edit when not nil.
func (s *system) sendAgain(t *testing.T, c tapped, edit func(http.Header)) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, strings.TrimSuffix(s.apiURL, "/")+c.path, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = c.header.Clone()
	req.Header.Del("Content-Length")
	if edit != nil {
		edit(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("send the captured call again: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, strings.TrimSpace(string(raw))
}

func answeredWith(rs []tapped, code int) int {
	n := 0
	for _, r := range rs {
		if r.status == code {
			n++
		}
	}
	return n
}

// flood sends calls that are not genuine webhooks to the ingest route.
type flood struct {
	apiURL string // up to and including the route's prefix
	// realSigned and realSecret are the real paths of the HMAC and the
	// secret webhook, where forged calls go.
	realSigned, realSecret string
	pool                   []string
	client                 *http.Client

	sent, errors                                atomic.Int64
	fresh, pooled, malformed, wrongKind, forged atomic.Int64
	took                                        time.Duration
	mu                                          sync.Mutex
	statuses                                    map[int]int
}

// run sends up to n calls in at most d from workers callers.
func (f *flood) run(t *testing.T, n int, d time.Duration, workers int) {
	start := time.Now()
	deadline := start.Add(d)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w)+10, 20))
			for {
				i := next.Add(1)
				if i > int64(n) || time.Now().After(deadline) || t.Context().Err() != nil {
					return
				}
				f.one(t, r, i)
			}
		})
	}
	wg.Wait()
	f.took = time.Since(start)
}

// one sends the flood's i-th call, of a kind drawn from r.
func (f *flood) one(t *testing.T, r *rand.Rand, i int64) {
	method, ctype, path := http.MethodPost, "application/json", ""
	header := http.Header{}
	body := floodBody(r)
	switch k := r.IntN(100); {
	case i%250 == 0: // forged: a signature made without the key, a secret guessed
		f.forged.Add(1)
		if i%1000 == 0 {
			path = f.realSecret
			header.Set(ingest.HeaderSecret, randHex(r, 48))
			break
		}
		path = f.realSigned
		ts := time.Now()
		if i%500 == 0 {
			ts = ts.Add(-time.Hour)
		}
		sig := make([]byte, 32)
		for j := range sig {
			sig[j] = byte(r.Uint32())
		}
		header.Set(ingest.HeaderWebhookID, "msg_"+randHex(r, 32))
		header.Set(ingest.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
		header.Set(ingest.HeaderWebhookSignature, "v1,"+base64.StdEncoding.EncodeToString(sig))
		body = fmt.Appendf(nil, `{"sys_id":"%s","table":"change_request","operation":"insert","instance_name":"snowsim"}`, randHex(r, 32))
	case k < 45:
		f.fresh.Add(1)
		path = randHex(r, 24)
	case k < 65:
		f.pooled.Add(1)
		path = f.pool[r.IntN(len(f.pool))]
	case k < 90:
		f.malformed.Add(1)
		path = malformedPath(r)
	case k < 97:
		f.wrongKind.Add(1)
		path = randHex(r, 24)
		switch r.IntN(3) {
		case 0:
			method = http.MethodGet
		case 1:
			method = http.MethodPut
		default:
			ctype = "text/plain"
		}
	default: // Standard Webhooks headers of random values on a new path
		f.fresh.Add(1)
		path = randHex(r, 24)
		header.Set(ingest.HeaderWebhookID, "msg_"+randHex(r, 32))
		header.Set(ingest.HeaderWebhookTimestamp, strconv.FormatInt(time.Now().Unix(), 10))
		header.Set(ingest.HeaderWebhookSignature, "v1,"+randHex(r, 44))
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.apiURL+path, bytes.NewReader(body))
	if err != nil { // a malformed path that is no URL at all
		f.count(-1)
		return
	}
	req.Header = header
	req.Header.Set("Content-Type", ctype)
	f.sent.Add(1)
	resp, err := f.client.Do(req)
	if err != nil {
		f.count(-1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	f.count(resp.StatusCode)
}

func (f *flood) count(code int) {
	if code < 0 {
		f.errors.Add(1)
		return
	}
	f.mu.Lock()
	f.statuses[code]++
	f.mu.Unlock()
}

func (f *flood) status(code int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statuses[code]
}

func (f *flood) statusMap() map[int]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[int]int, len(f.statuses))
	for k, v := range f.statuses {
		out[k] = v
	}
	return out
}

// randHex returns n lower-case hex digits.
func randHex(r *rand.Rand, n int) string {
	b := make([]byte, (n+1)/2)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return hex.EncodeToString(b)[:n]
}

// malformedPath is a path no webhook has: of the wrong length, in upper
// case, not hex, escaped, with more segments, or very long.
func malformedPath(r *rand.Rand) string {
	switch r.IntN(7) {
	case 0:
		return randHex(r, 23)
	case 1:
		return randHex(r, 25)
	case 2:
		return "A" + strings.ToUpper(randHex(r, 23))
	case 3:
		return "g" + randHex(r, 23)
	case 4:
		return url.PathEscape("../../" + randHex(r, 18))
	case 5:
		return randHex(r, 24) + "/" + randHex(r, 4)
	default:
		return strings.Repeat("a", 25+r.IntN(2000))
	}
}

// floodBody is a random body: empty, random bytes, JSON of a record that
// does not exist, JSON nested deep, or larger than ingest reads.
func floodBody(r *rand.Rand) []byte {
	switch r.IntN(10) {
	case 0:
		return nil
	case 1, 2:
		b := make([]byte, r.IntN(512))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	case 3:
		return []byte(strings.Repeat(`{"a":[`, 1+r.IntN(1000)))
	case 4:
		return bytes.Repeat([]byte("x"), ingest.MaxBody+1+r.IntN(1024))
	default:
		return fmt.Appendf(nil, `{"sys_id":"%s","table":"incident","number":"INC%07d","sys_mod_count":"0","operation":"insert"}`,
			randHex(r, 32), r.IntN(1e7))
	}
}
