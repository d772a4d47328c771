package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/connect"
	"github.com/snowgate/snowgate/internal/demoengine"
	"github.com/snowgate/snowgate/internal/localrun"
	"github.com/snowgate/snowgate/internal/provision"
	"github.com/snowgate/snowgate/internal/redelivery"
	"github.com/snowgate/snowgate/internal/registration"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/secrets"
	"github.com/snowgate/snowgate/internal/snowsim"
	"github.com/snowgate/snowgate/internal/state"
)

// stormPrefix begins the names of a storm's tables, queues and functions.
const stormPrefix = "bench-storm"

// stormUser is the gateway's integration user on the simulated instance;
// the rate limit rule is for it. The storm's changes are made by people,
// in the instance itself, and cost the integration user nothing.
const stormUser = "snowgate.integration"

// The storm runs in compressed time: the rate limit rule counts per minute
// where ServiceNow counts per hour, so a minute stands for an hour, and the
// functions' retries and pauses are compressed by the same factor.
const (
	stormWindow      = time.Minute
	stormCompression = time.Hour / stormWindow
)

// stormEnv are the functions' settings for compressed time: redelivery's
// backoff (1 min to 1 h within 24 h, as deployed) and the longest budget
// pause (the retry horizon, as deployed), each divided by stormCompression.
func stormEnv() map[string]string {
	c := func(d time.Duration) string { return (d / stormCompression).String() }
	return map[string]string{
		redelivery.EnvBase:    c(schema.RetryBase),
		redelivery.EnvCap:     c(schema.RetryCap),
		redelivery.EnvHorizon: c(schema.RetryHorizon),
		connect.EnvMaxPause:   c(schema.RetryHorizon),
	}
}

// Concurrency of the storm's system: make dev's defaults.
const (
	stormIngestEnvs    = localrun.DefaultIngestEnvironments
	stormProcessorEnvs = localrun.DefaultProcessorEnvironments
	stormBatches       = localrun.DefaultProcessorBatches
)

// stormSystem is what make dev runs, for one storm: fresh tables and
// queues, the four functions on the rig's emulator, the HTTP API, the SQS
// event sources, the reconciler's schedule (every 2 minutes, as deployed),
// the demo engine, and a simulator of its own whose requests are logged.
type stormSystem struct {
	res     provision.Resources
	sqs     *sqs.Client
	tickets *state.Store
	sim     *snowsim.Sim
	calls   *callLog
	fired   *firingLog
	gateway registry.Gateway
	logPath string
	closers []func()
}

func (s *stormSystem) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// startStorm starts the storm's system. The instance allows
// set.QuotaPerMin requests a minute to the integration user; the gateway's
// budget is set.RatePerHour and set.MaxConcurrency.
func (r *Rig) startStorm(ctx context.Context, set StormSettings, run int) (_ *stormSystem, err error) {
	writer := r.Bootstrap(localrun.Writer)
	if _, err := os.Stat(writer); err != nil {
		if err := r.goBuild(ctx, writer, "./functions/"+localrun.Writer, "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH); err != nil {
			return nil, err
		}
	}
	s := &stormSystem{logPath: r.logFile.Name()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	prefix := fmt.Sprintf("%s%d-", stormPrefix, run)
	cfg := sdkConfig(r.Cfg, r.Emu.URL)
	if s.res, err = provision.Create(ctx, cfg, prefix); err != nil {
		return nil, fmt.Errorf("create tables and queues: %w", err)
	}
	s.closers = append(s.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = provision.Delete(ctx, cfg, s.res)
	})
	s.sqs = sqs.NewFromConfig(cfg)
	db := dynamodb.NewFromConfig(cfg)
	s.tickets = state.New(db, s.res.StateTable)

	pass := randomPassword()
	s.fired = &firingLog{next: webhookTransport()}
	s.sim = snowsim.New(snowsim.WithUser(stormUser, pass),
		snowsim.WithLogger(slog.New(slog.NewJSONHandler(r.Logs.Writer("snowsim"), nil))),
		snowsim.WithHTTPClient(&http.Client{Transport: s.fired}),
		snowsim.WithRateLimit(stormRule(set.QuotaPerMin)),
		// Business Rules run twice now and then; executeAsync calls arrive
		// late, out of order, and some twice.
		snowsim.WithECCQueue(snowsim.ECCQueue{Seed: int64(run) + 1, Delay: 50 * time.Millisecond, Jitter: 500 * time.Millisecond, ResendRate: 0.02}),
	)
	s.sim.SetFaults(snowsim.Faults{Seed: int64(run) + 1, DuplicateRate: set.DuplicateRate})
	s.calls = &callLog{window: stormWindow}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the simulator: %w", err)
	}
	simSrv := &http.Server{Handler: s.calls.wrap(localrun.SimHandler(s.sim, r.Log)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = simSrv.Serve(ln) }()
	s.closers = append(s.closers, func() { _ = simSrv.Close() })
	simURL := "http://" + ln.Addr().String()

	env := s.res.Env()
	env[schema.EnvSecretPrefix] = schema.DefaultSecretPrefix
	for k, v := range stormEnv() {
		env[k] = v
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	s.closers = append(s.closers, func() { cancel(); wg.Wait() })
	lc := lambda.NewFromConfig(cfg)
	sup := &localrun.Supervisor{Emulator: r.Emu, Region: cfg.Region, Logs: r.Logs, Log: r.Log}
	arns := map[string]string{}
	fns := []struct {
		name    string
		timeout time.Duration
		envs    int
	}{
		{localrun.Ingest, 10 * time.Second, stormIngestEnvs},
		{localrun.Processor, schema.ProcessorTimeout, stormProcessorEnvs},
		{localrun.Reconciler, 90 * time.Second, 1},
		{localrun.Writer, schema.WriterTimeout, 1},
	}
	for _, f := range fns {
		fn := localrun.Function{Name: prefix + f.name, Bootstrap: r.Bootstrap(f.name), Timeout: f.timeout, MemoryMB: 256, Env: env, Environments: f.envs}
		if arns[f.name], err = localrun.Register(ctx, lc, fn); err != nil {
			return nil, fmt.Errorf("register %s: %w", fn.Name, err)
		}
		wg.Go(func() {
			if err := sup.Run(runCtx, fn); err != nil {
				r.Log.Error("function stopped", "function", fn.Name, "error", err)
			}
		})
	}
	apiID, err := localrun.CreateHTTPAPI(ctx, apigatewayv2.NewFromConfig(cfg), prefix+"api", localrun.IngestRoute, arns[localrun.Ingest])
	if err != nil {
		return nil, err
	}
	front, err := localrun.StartFront("127.0.0.1:0", r.Emu.URL, apiID)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, front.Close)
	wait, cancelWait := context.WithTimeout(ctx, time.Minute)
	defer cancelWait()
	for _, f := range fns {
		if err := r.Emu.WaitPolling(wait, prefix+f.name); err != nil {
			return nil, fmt.Errorf("function %s never asked for work: %w", prefix+f.name, err)
		}
	}

	reg := registry.New(db, s.res.RegistryTable)
	ops := registration.New(reg, secrets.New(secretsmanager.NewFromConfig(cfg)), registration.WithSecretPrefix(schema.DefaultSecretPrefix))
	if s.gateway, err = ops.CreateGateway(ctx, registration.GatewayInput{
		Name: "storm", Description: "make bench: the storm", InstanceURL: simURL,
		Auth: registry.AuthBasic, Username: stormUser, Password: pass,
		DedupWindowMinutes: registry.DefaultDedupWindowMinutes, WriteBack: true, Active: true,
		RateLimitPerHour: set.RatePerHour, MaxConcurrency: set.MaxConcurrency, SkipInstanceChecks: true,
	}); err != nil {
		return nil, fmt.Errorf("create the storm's gateway: %w", err)
	}
	made, err := ops.CreateWebhook(ctx, registration.WebhookInput{
		Name: "storm-incident", SourceType: registry.SourceServiceNow, EventType: snowsim.TableIncident,
		GatewayID: s.gateway.ID, Signing: registry.SigningSecret,
	})
	if err != nil {
		return nil, fmt.Errorf("create the storm's webhook: %w", err)
	}
	rule, err := businessrule.Render(businessrule.Params{
		WebhookID: made.Webhook.ID, WebhookName: made.Webhook.Name, Table: snowsim.TableIncident,
		URL: localrun.IngestURL(front.URL, made.Webhook.Path), Signing: registry.SigningSecret, Secret: made.Secret,
		Condition: s.gateway.RuleCondition(),
	})
	if err != nil {
		return nil, err
	}
	if err := s.sim.AddBusinessRule(snowsim.Rule{Name: rule.Name, Table: rule.Table, Condition: rule.Condition, Script: rule.Script,
		Insert: rule.Insert, Update: rule.Update, Scope: snowsim.GlobalScope}); err != nil {
		return nil, err
	}

	for _, es := range []struct {
		queue, fn string
		batches   int
	}{{s.res.IntakeQueueURL, localrun.Processor, stormBatches}, {s.res.ResultsQueueURL, localrun.Writer, 1}} {
		src := &localrun.SQSSource{SQS: s.sqs, Lambda: lc, Log: r.Log, QueueURL: es.queue, Function: prefix + es.fn,
			Region: cfg.Region, BatchSize: 10, Concurrency: es.batches}
		wg.Go(func() {
			if err := src.Run(runCtx); err != nil {
				r.Log.Error("SQS event source stopped", "function", src.Function, "error", err)
			}
		})
	}
	sched := &localrun.Schedule{Lambda: lc, Log: r.Log, Function: prefix + localrun.Reconciler, Rule: prefix + "reconcile",
		Region: cfg.Region, Interval: localrun.DefaultInterval}
	wg.Go(func() { _ = sched.Run(runCtx) })
	eng := &demoengine.Engine{SQS: s.sqs, DispatchURL: s.res.DispatchQueueURL, ResultsURL: s.res.ResultsQueueURL,
		WaitTime: time.Second, Log: slog.New(slog.NewJSONHandler(r.Logs.Writer("engine"), nil))}
	wg.Go(func() {
		if err := eng.Run(runCtx); err != nil && runCtx.Err() == nil {
			r.Log.Error("demo engine stopped", "error", err)
		}
	})
	return s, nil
}

// stormRule is the instance's rate limit rule for the integration user.
func stormRule(perMin int) snowsim.RateLimitRule {
	return snowsim.RateLimitRule{Name: "storm: integration user", User: stormUser, Limit: perMin, Window: stormWindow}
}

func randomPassword() string {
	return strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
}

// webhookTransport is a pooled transport for the Business Rules' calls,
// as make dev gives its simulator: they call as fast as records change.
func webhookTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 0, maxConns
	return t
}

// callLog records every Table API and token request the simulator serves:
// when it arrived, what it was, and the status it was answered with.
type callLog struct {
	// window is the rate limit rule's; X-RateLimit-Limit is scaled from it
	// to an hour (see wrap).
	window time.Duration
	mu     sync.Mutex
	calls  []stormCall
}

type stormCall struct {
	at     time.Time
	kind   string
	status int
}

// wrap logs the requests h serves. ServiceNow's rules count per hour and
// the budget reads X-RateLimit-Limit so; the storm's rule counts per
// minute, so the header is scaled to an hour at the same rate, as the
// minute stands for an hour.
func (l *callLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") && r.URL.Path != "/oauth_token.do" {
			h.ServeHTTP(w, r)
			return
		}
		at := time.Now()
		sw := &scalingWriter{ResponseWriter: w, factor: int(time.Hour / l.window)}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		l.mu.Lock()
		l.calls = append(l.calls, stormCall{at: at, kind: callKind(r), status: sw.status})
		l.mu.Unlock()
	})
}

// reset forgets the requests logged so far.
func (l *callLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = nil
}

// snapshot returns the requests logged so far, in arrival order.
func (l *callLog) snapshot() []stormCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.calls)
	slices.SortStableFunc(out, func(a, b stormCall) int { return a.at.Compare(b.at) })
	return out
}

// callKind names a request by method, table and whether it addressed one
// record: "GET incident record", "GET sys_journal_field".
func callKind(r *http.Request) string {
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/now/table/")
	if !ok {
		return r.Method + " " + r.URL.Path
	}
	table, id, one := strings.Cut(rest, "/")
	if one && id != "" {
		return r.Method + " " + table + " record"
	}
	return r.Method + " " + table
}

type scalingWriter struct {
	http.ResponseWriter
	factor int
	status int
}

func (w *scalingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		h := w.Header()
		if n, err := strconv.Atoi(h.Get("X-RateLimit-Limit")); err == nil && w.factor > 1 {
			h.Set("X-RateLimit-Limit", strconv.Itoa(n*w.factor))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *scalingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *scalingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// firingLog records the Business Rules' webhook calls: which version of
// which record each one announced.
type firingLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	got  []firing
}

type firing struct {
	sysID   string
	version int
}

func (l *firingLog) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		body, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var b struct {
			SysID       string `json:"sys_id"`
			SysModCount int    `json:"sys_mod_count"`
		}
		if json.Unmarshal(body, &b) == nil && b.SysID != "" {
			l.mu.Lock()
			l.got = append(l.got, firing{b.SysID, b.SysModCount})
			l.mu.Unlock()
		}
	}
	return l.next.RoundTrip(r)
}

func (l *firingLog) snapshot() []firing {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// stormChange is one change a person made: the record and the version it
// produced.
type stormChange struct {
	at      time.Time
	sysID   string
	version int
}

// stormPlan is when one change of the storm is due: update (0: the
// insert) of record. The records are created over the first half of the
// storm, each then updated at random times up to its end.
type stormPlan struct {
	at             time.Duration
	record, update int
}

func planStorm(set StormSettings, seed uint64) []stormPlan {
	rng := rand.New(rand.NewPCG(seed, seed^0x5707))
	var plan []stormPlan
	half := set.Duration / 2
	for j := range set.Records {
		created := time.Duration(int64(half) * int64(j) / int64(max(set.Records, 1)))
		plan = append(plan, stormPlan{at: created, record: j})
		for i := range set.Updates {
			at := created + time.Millisecond + time.Duration(rng.Int64N(int64(set.Duration-created)))
			plan = append(plan, stormPlan{at: at, record: j, update: i + 1})
		}
	}
	slices.SortStableFunc(plan, func(a, b stormPlan) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return a.update - b.update
	})
	// An update never comes before its record's insert, nor before the
	// update numbered before it.
	next := map[int]int{}
	for k := range plan {
		p := &plan[k]
		p.update = next[p.record]
		next[p.record]++
	}
	return plan
}

// fields is what the change sets: the new incident's fields for the
// insert, a new priority and description for an update.
func (p stormPlan) fields(run string) map[string]string {
	if p.update == 0 {
		return map[string]string{
			"short_description": fmt.Sprintf("storm %s #%d: checkout API answers 503", run, p.record),
			"priority":          "3", "impact": "2", "urgency": "2", "state": "1", "u_environment": "production",
		}
	}
	return map[string]string{
		"priority":    strconv.Itoa(1 + (p.record+p.update)%4),
		"description": fmt.Sprintf("update %d: still failing for more customers", p.update),
	}
}

// generate makes the changes of the plan on schedule (an open loop: people
// do not wait for the system), in the instance itself, as people in its
// UI would, and reports each one.
func (s *stormSystem) generate(ctx context.Context, plan []stormPlan, run string, start time.Time, made func(stormChange)) error {
	ids := map[int]string{}
	var firstErr error
	for _, p := range plan {
		if w := time.Until(start.Add(p.at)); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		var rec map[string]string
		var err error
		if p.update == 0 {
			rec, err = s.sim.Insert(snowsim.TableIncident, p.fields(run))
		} else {
			rec, err = s.sim.Update(snowsim.TableIncident, ids[p.record], p.fields(run))
		}
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("storm change %d of record %d: %w", p.update, p.record, err)
			}
			continue
		}
		if p.update == 0 {
			ids[p.record] = rec["sys_id"]
		}
		v, _ := strconv.Atoi(rec["sys_mod_count"])
		made(stormChange{at: time.Now(), sysID: rec["sys_id"], version: v})
	}
	return firstErr
}

// decided reads the decided version of every ticket of the gateway.
func (s *stormSystem) decided(ctx context.Context) (map[string]int, error) {
	ts, err := s.tickets.List(ctx, state.ListOptions{GatewayID: s.gateway.ID})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(ts))
	for _, t := range ts {
		out[t.SysID] = t.Decided()
	}
	return out, nil
}

// depth counts a queue's messages, visible, in flight and delayed (-1:
// unknown).
func (s *stormSystem) depth(ctx context.Context, url string) int { return queueDepth(ctx, s.sqs, url) }

// MeasureStorm runs one storm on a system of its own and measures it.
func (r *Rig) MeasureStorm(ctx context.Context, set StormSettings, run int, progress func(string, ...any)) (Storm, error) {
	st := Storm{Settings: set, CallsByKind: map[string]int{}, LoadBefore: loadAvg()}
	sys, err := r.startStorm(ctx, set, run)
	if err != nil {
		return st, err
	}
	defer sys.close()
	logFrom := fileSize(sys.logPath)
	// The setup is not the storm's: start from a clean count, on the
	// instance and in the request log.
	time.Sleep(2 * time.Second)
	sys.sim.SetRateLimits(stormRule(set.QuotaPerMin))
	sys.calls.reset()

	plan := planStorm(set, uint64(run)+1)
	var (
		mu      sync.Mutex
		changes []stormChange
		latest  = map[string]int{}
	)
	start := time.Now()
	st.Started = start
	genDone := make(chan error, 1)
	go func() {
		genDone <- sys.generate(ctx, plan, strconv.FormatInt(start.Unix(), 36), start, func(c stormChange) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, c)
			latest[c.sysID] = max(latest[c.sysID], c.version)
		})
	}()

	var (
		generated  bool
		stableFrom time.Time
		lastReport time.Time
		deadline   = start.Add(set.Duration + set.Wait)
	)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-genDone:
			generated = true
			if err != nil {
				st.Notes = append(st.Notes, err.Error())
			}
			genDone = nil
		case <-tick.C:
		case <-ctx.Done():
			return st, ctx.Err()
		}
		now := time.Now()
		dec, err := sys.decided(ctx)
		if err != nil {
			continue
		}
		mu.Lock()
		backlog := 0
		for _, c := range changes {
			if d, ok := dec[c.sysID]; !ok || d < c.version {
				backlog++
			}
		}
		records := len(latest)
		ids := make([]string, 0, len(latest))
		for id := range latest {
			ids = append(ids, id)
		}
		mu.Unlock()
		st.Series.Backlog = append(st.Series.Backlog, StormSample{At: now.Sub(start), Backlog: backlog})
		done := false
		if generated {
			undecided := 0
			for _, id := range ids {
				rec, _ := sys.sim.Record(snowsim.TableIncident, id)
				v, _ := strconv.Atoi(rec["sys_mod_count"])
				if d, ok := dec[id]; !ok || d < v {
					undecided++
				}
			}
			intake, dispatch, results := sys.depth(ctx, sys.res.IntakeQueueURL), sys.depth(ctx, sys.res.DispatchQueueURL), sys.depth(ctx, sys.res.ResultsQueueURL)
			queued := intake + dispatch + results
			switch {
			case undecided == 0 && queued == 0 && stableFrom.IsZero():
				stableFrom = now
			case undecided > 0 || queued != 0:
				stableFrom = time.Time{}
			}
			// The demo engine holds a job for its delay before it answers:
			// settled is settled for longer than that.
			done = !stableFrom.IsZero() && now.Sub(stableFrom) >= demoengine.DefaultDelay+3*time.Second
			if now.Sub(lastReport) >= 30*time.Second {
				progress("storm run %d: %s in, %d records, backlog %d changes, %d records undecided, messages queued: intake %d, dispatch %d, results %d",
					run+1, now.Sub(start).Round(time.Second), records, backlog, undecided, intake, dispatch, results)
				lastReport = now
			}
		}
		if done || now.After(deadline) {
			st.Drained = done
			end := now
			if done {
				end = stableFrom
			}
			st.Drain = end.Sub(start)
			break
		}
	}

	// What the storm did, by the simulator's logs.
	calls := sys.calls.snapshot()
	times := make([]time.Time, 0, len(calls))
	var rejected []time.Time
	for _, c := range calls {
		if c.at.After(start.Add(st.Drain)) {
			continue
		}
		times = append(times, c.at)
		st.CallsByKind[fmt.Sprintf("%s → %d", c.kind, c.status)]++
		if c.status == http.StatusTooManyRequests {
			rejected = append(rejected, c.at)
		}
	}
	st.HTTP429 = len(rejected)
	st.Series.Rejected429PerMin = PerWindow(rejected, start, st.Drain, time.Minute)
	st.Calls = len(times)
	st.MaxCallsPerMin = MaxInWindow(times, time.Minute)
	st.Series.CallsPerMin = PerWindow(times, start, st.Drain, time.Minute)

	mu.Lock()
	people := map[firing]bool{}
	for _, c := range changes {
		people[firing{c.sysID, c.version}] = true
	}
	st.Records = len(latest)
	mu.Unlock()
	seen := map[firing]bool{}
	for _, f := range sys.fired.snapshot() {
		if people[f] {
			st.Firings++
		}
		seen[f] = true
	}
	for f := range seen {
		if people[f] {
			st.Changes++
		} else {
			st.Echoes++
		}
	}
	if missed := len(people) - st.Changes; missed > 0 {
		st.Notes = append(st.Notes, fmt.Sprintf("%d of the people's changes fired no webhook (the rule's condition did not match)", missed))
	}

	dec, err := sys.decided(ctx)
	if err != nil {
		return st, fmt.Errorf("read the decisions: %w", err)
	}
	for id := range latest {
		rec, _ := sys.sim.Record(snowsim.TableIncident, id)
		v, _ := strconv.Atoi(rec["sys_mod_count"])
		if d, ok := dec[id]; !ok || d < v {
			st.Lost++
		}
	}
	for _, url := range []string{sys.res.IntakeDLQURL, sys.res.DispatchDLQURL, sys.res.ResultsDLQURL} {
		st.DeadLetters += max(sys.depth(ctx, url), 0)
	}
	st.Errors = stormLogFindings(sys.logPath, logFrom)
	st.LoadAfter = loadAvg()
	return st, nil
}

// stormLogFindings counts the warning and error lines the system logged
// after offset from, by program and message.
func stormLogFindings(path string, from int64) map[string]int {
	errs := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		errs["reading the log: "+err.Error()]++
		return errs
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		errs["reading the log: "+err.Error()]++
		return errs
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Process string `json:"process"`
			Level   string `json:"level"`
			Msg     string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || (line.Level != "WARN" && line.Level != "ERROR") {
			continue
		}
		label, _, _ := strings.Cut(line.Process, "#")
		if i := strings.LastIndex(label, "-"); i >= 0 && strings.HasPrefix(label, stormPrefix) {
			label = label[i+1:]
		}
		errs[fmt.Sprintf("%s %s: %s", line.Level, label, line.Msg)]++
	}
	return errs
}
