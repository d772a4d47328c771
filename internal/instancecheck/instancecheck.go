// Package instancecheck checks a gateway against its ServiceNow instance:
// that the instance answers the API, that it accepts the gateway's
// credentials, that the integration user may read what the gateway reads
// and add work notes, that its time zone is UTC and plain date literals are
// read as UTC, that the gateway's filters name groups and fields that
// exist, that the snowgate Business Rules are in place (present, active,
// in the Global scope) and how much of the rate limit is left.
//
// The checks only read: they call the Table API through the gateway's own
// servicenow.Client and never write to a record (the work-note right is
// judged from the user's roles). Each check ends ok, failed or skipped (a
// prerequisite failed: without credentials nothing else can run), with a
// detail and, when it failed, the fix.
package instancecheck

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
)

// Status is the outcome of one check.
type Status string

// Outcomes of a check.
const (
	OK      Status = "ok"
	Failed  Status = "failed"
	Skipped Status = "skipped"
)

// Names of the checks, in the order they run.
const (
	CheckReachability  = "reachability"
	CheckCredentials   = "credentials"
	CheckReadRights    = "read_rights"
	CheckWorkNotes     = "work_notes"
	CheckTimeZone      = "time_zone"
	CheckQueryCanary   = "query_canary"
	CheckFilters       = "filters"
	CheckBusinessRules = "business_rules"
	CheckRateLimit     = "rate_limit"
)

// Check is the outcome of one check.
type Check struct {
	Name   string
	Status Status
	// Detail says what was found (or, for a skipped check, why it did not
	// run).
	Detail string
	// Fix says what to change; empty unless the check failed.
	Fix string
}

// Report is the outcome of every check of a gateway.
type Report struct {
	GatewayID   string
	InstanceURL string
	Checks      []Check
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	return slices.ContainsFunc(r.Checks, func(c Check) bool { return c.Status == Failed })
}

// Check returns the check named name.
func (r Report) Check(name string) (Check, bool) {
	i := slices.IndexFunc(r.Checks, func(c Check) bool { return c.Name == name })
	if i < 0 {
		return Check{}, false
	}
	return r.Checks[i], true
}

// Instance is what the checks need of a ServiceNow client.
type Instance interface {
	Query(ctx context.Context, table string, q servicenow.Query, page func([]servicenow.Record) error) (servicenow.QueryStats, error)
}

var _ Instance = (*servicenow.Client)(nil)

// Connect builds the gateway's client from its credentials with opts, which
// Run supplies (a transport that reads the rate-limit headers, and few
// retries, so that a check reports what it sees at once). An error is a
// credentials problem: the secret is missing or incomplete.
type Connect func(ctx context.Context, opts ...servicenow.Option) (Instance, error)

// Target is the gateway to check and its webhooks.
type Target struct {
	Gateway  registry.Gateway
	Webhooks []registry.Webhook
}

// Option configures Run.
type Option func(*runner)

// WithTransport sets the transport the client sends its requests through
// (default http.DefaultTransport).
func WithTransport(rt http.RoundTripper) Option { return func(r *runner) { r.base = rt } }

// WithClock sets the clock that dates the rate-limit reset.
func WithClock(now func() time.Time) Option { return func(r *runner) { r.now = now } }

// Tables whose read right every gateway needs besides its own.
const tableJournal = "sys_journal_field"

// Tables of the instance's setup the checks read.
const (
	tableUser       = "sys_user"
	tableUserRole   = "sys_user_has_role"
	tableRole       = "sys_user_role"
	tableGroup      = "sys_user_group"
	tableDictionary = "sys_dictionary"
	tableScript     = "sys_script"
	// globalScope is the sys_id of the Global application scope.
	globalScope = "global"
	// environmentField is the (custom) field the environment filter reads.
	environmentField = "u_environment"
)

// workNoteRoles grant adding work notes to a table's records: itil (and
// admin) on both, the table's own writer role otherwise. Roles a user has
// through another role are listed in sys_user_has_role too (inherited).
var workNoteRoles = map[string][]string{
	"incident":       {"itil", "admin", "sn_incident_write"},
	"change_request": {"itil", "admin", "sn_change_write"},
}

type runner struct {
	t      Target
	base   http.RoundTripper
	now    func() time.Time
	inst   Instance
	limits *rateLimitRecorder
	checks []Check
	user   servicenow.Record // the integration user's sys_user record, when known
	canary canaryRecord
	// throttled: a call was answered 429.
	throttled bool
}

type canaryRecord struct {
	table, sysID, updatedOn string
}

// Run runs every check of t and returns their outcomes; it fails only
// through the checks it reports.
func Run(ctx context.Context, t Target, connect Connect, opts ...Option) Report {
	r := &runner{t: t, base: http.DefaultTransport, now: time.Now}
	for _, o := range opts {
		o(r)
	}
	r.limits = &rateLimitRecorder{base: r.base}
	r.run(ctx, connect)
	return Report{GatewayID: t.Gateway.ID, InstanceURL: t.Gateway.InstanceURL, Checks: r.checks}
}

func (r *runner) add(name string, st Status, detail, fix string) {
	r.checks = append(r.checks, Check{Name: name, Status: st, Detail: detail, Fix: fix})
}

// skipRest marks every check not run yet as skipped for why.
func (r *runner) skipRest(why string) {
	for _, name := range []string{CheckReachability, CheckCredentials, CheckReadRights, CheckWorkNotes,
		CheckTimeZone, CheckQueryCanary, CheckFilters, CheckBusinessRules, CheckRateLimit} {
		if !slices.ContainsFunc(r.checks, func(c Check) bool { return c.Name == name }) {
			r.add(name, Skipped, why, "")
		}
	}
	slices.SortStableFunc(r.checks, func(a, b Check) int { return order(a.Name) - order(b.Name) })
}

func order(name string) int {
	return slices.Index([]string{CheckReachability, CheckCredentials, CheckReadRights, CheckWorkNotes,
		CheckTimeZone, CheckQueryCanary, CheckFilters, CheckBusinessRules, CheckRateLimit}, name)
}

func (r *runner) run(ctx context.Context, connect Connect) {
	g := r.t.Gateway
	hc := &http.Client{Transport: r.limits}
	inst, err := connect(ctx, servicenow.WithHTTPClient(hc), servicenow.WithMaxAttempts(2),
		servicenow.WithBackoff(100*time.Millisecond, time.Second), servicenow.WithUserAgent(servicenow.DefaultUserAgent+" gateway check"))
	if err != nil {
		r.add(CheckCredentials, Failed, "cannot build a client from the gateway's credentials: "+err.Error(),
			"store complete credentials for the gateway: "+updateHint(g))
		r.skipRest("no usable credentials")
		return
	}
	r.inst = inst
	if !r.probe(ctx) {
		return
	}
	for _, step := range []func(context.Context){r.readRights, r.workNotes, r.timeZone, r.queryCanary, r.filters, r.businessRules} {
		before := len(r.checks)
		step(ctx)
		if r.throttled {
			// The instance stopped answering for the rest of the window:
			// what the step found is the rate limit, not its subject.
			r.checks = r.checks[:before]
			r.rateLimit()
			r.skipRest("the rate limit is exhausted")
			return
		}
	}
	r.rateLimit()
}

// updateHint is the command that replaces a gateway's credentials.
func updateHint(g registry.Gateway) string {
	switch g.Auth {
	case registry.AuthOAuthClientCredentials:
		return "2501 infra gateway update --id " + g.ID + " --client-id … --client-secret-stdin"
	case registry.AuthOAuthPassword:
		return "2501 infra gateway update --id " + g.ID + " --username … --password-stdin --client-secret-stdin"
	}
	return "2501 infra gateway update --id " + g.ID + " --username … --password-stdin"
}

// userKnown: the gateway names its integration user (basic auth and the
// password grant); with client credentials it is the OAuth application's
// user, which the gateway does not know.
func (r *runner) userKnown() bool { return r.t.Gateway.Username != "" }

// probe makes the first call, reading the integration user's sys_user
// record, and judges reachability and credentials from its answer. It
// reports whether the other checks can run.
func (r *runner) probe(ctx context.Context) bool {
	q := servicenow.Query{Encoded: "ORDERBYsys_id", Fields: []string{"sys_id"}, PageSize: 1}
	if r.userKnown() {
		q = servicenow.Query{Encoded: "user_name=" + r.t.Gateway.Username, Fields: []string{"sys_id", "user_name", "time_zone"}, PageSize: 1}
	}
	recs, err := r.first(ctx, tableUser, q)
	host := r.t.Gateway.InstanceURL
	var se *servicenow.Error
	switch {
	case err == nil:
		r.add(CheckReachability, OK, host+" answers the Table API over "+scheme(host), "")
		r.add(CheckCredentials, OK, "the instance accepts the gateway's "+r.t.Gateway.Auth+" credentials"+who(r.t.Gateway), "")
		if len(recs) > 0 && r.userKnown() {
			r.user = recs[0]
		}
		return true
	case errors.Is(err, servicenow.ErrNotAPI):
		r.add(CheckReachability, Failed, "the instance answers with a web page, not the API: it is hibernating (or a proxy answers for it)",
			"wake the instance (developer instances: sign in at developer.servicenow.com and wake it), then run the check again")
		r.skipRest("the instance does not answer the API")
		return false
	case servicenow.IsCertificateError(err):
		r.add(CheckReachability, Failed, "TLS: the instance's certificate is not trusted: "+err.Error(),
			"use the instance's own https://<instance>.service-now.com URL, or trust the proxy's certificate authority")
		r.skipRest("the instance cannot be reached")
		return false
	case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusBadRequest && se.Hint != ""):
		r.add(CheckReachability, OK, host+" answers the Table API over "+scheme(host), "")
		fix := se.Hint
		if fix == "" {
			fix = "check the gateway's credentials: " + updateHint(r.t.Gateway)
		}
		r.add(CheckCredentials, Failed, "the instance refused the gateway's "+r.t.Gateway.Auth+" credentials"+who(r.t.Gateway)+
			" ("+refusal(se)+")", fix)
		r.skipRest("the instance refused the credentials")
		return false
	case errors.As(err, &se) && se.Status == http.StatusTooManyRequests:
		r.add(CheckReachability, OK, host+" answers the Table API over "+scheme(host), "")
		r.add(CheckCredentials, OK, "accepted (the answer was the user's rate limit)", "")
		r.rateLimit()
		r.skipRest("the rate limit is exhausted")
		return false
	case errors.As(err, &se) && se.Status == http.StatusForbidden:
		// Authenticated, only without the right to read sys_user: the
		// time zone check says so.
		r.add(CheckReachability, OK, host+" answers the Table API over "+scheme(host), "")
		r.add(CheckCredentials, OK, "the instance accepts the gateway's "+r.t.Gateway.Auth+" credentials"+who(r.t.Gateway), "")
		return true
	case errors.As(err, &se):
		r.add(CheckReachability, Failed, "the instance answers with an error: "+err.Error(),
			"check the instance's status (stats.do, the node's logs) and the instance URL")
		r.skipRest("the instance does not answer the API")
		return false
	default:
		r.add(CheckReachability, Failed, "cannot reach "+host+": "+err.Error(),
			"check the instance URL (https://<instance>.service-now.com), DNS and the network path from AWS to the instance")
		r.skipRest("the instance cannot be reached")
		return false
	}
}

func scheme(u string) string {
	if strings.HasPrefix(u, "https:") {
		return "TLS"
	}
	return "plain http (loopback only)"
}

func who(g registry.Gateway) string {
	switch {
	case g.Username != "":
		return " (user " + g.Username + ")"
	case g.ClientID != "":
		return " (client id " + g.ClientID + ")"
	}
	return ""
}

// refusal is what the instance answered, without the hint (the fix).
func refusal(e *servicenow.Error) string {
	s := fmt.Sprintf("%d %s", e.Status, e.Message)
	if e.Detail != "" && e.Detail != e.Message {
		s += ": " + e.Detail
	}
	return s
}

// errFirstPage stops a query after its first page.
var errFirstPage = errors.New("first page read")

// first returns the first page of q (at most q.PageSize records).
func (r *runner) first(ctx context.Context, table string, q servicenow.Query) ([]servicenow.Record, error) {
	var recs []servicenow.Record
	_, err := r.inst.Query(ctx, table, q, func(page []servicenow.Record) error {
		recs = append(recs, page...)
		if len(recs) > 0 {
			return errFirstPage
		}
		return nil
	})
	if errors.Is(err, errFirstPage) {
		err = nil
	}
	r.noteThrottle(err)
	return recs, err
}

func (r *runner) noteThrottle(err error) {
	var se *servicenow.Error
	if errors.As(err, &se) && se.Status == http.StatusTooManyRequests {
		r.throttled = true
	}
}

// all returns every record of q.
func (r *runner) all(ctx context.Context, table string, q servicenow.Query) ([]servicenow.Record, error) {
	var recs []servicenow.Record
	_, err := r.inst.Query(ctx, table, q, func(page []servicenow.Record) error {
		recs = append(recs, page...)
		return nil
	})
	r.noteThrottle(err)
	return recs, err
}

// tables are the tables the gateway reads: its webhooks' event types, or
// both when it has none yet (the reconciler reads both).
func (r *runner) tables() []string {
	var ts []string
	for _, w := range r.t.Webhooks {
		if !slices.Contains(ts, w.EventType) {
			ts = append(ts, w.EventType)
		}
	}
	if len(ts) == 0 {
		ts = slices.Clone(registry.EventTypes)
	}
	slices.Sort(ts)
	return ts
}

func (r *runner) readRights(ctx context.Context) {
	var denied, broken, ok []string
	for _, table := range append(r.tables(), tableJournal) {
		recs, err := r.first(ctx, table, servicenow.Query{
			Encoded: "ORDERBYDESCsys_updated_on", Fields: []string{"sys_id", "sys_updated_on"}, PageSize: 1,
		})
		switch {
		case errors.Is(err, servicenow.ErrForbidden):
			denied = append(denied, table)
		case err != nil:
			broken = append(broken, table+": "+err.Error())
		default:
			ok = append(ok, table)
			if r.canary.sysID == "" && table != tableJournal && len(recs) > 0 && recs[0].SysID() != "" {
				r.canary = canaryRecord{table: table, sysID: recs[0].SysID(), updatedOn: recs[0][servicenow.FieldSysUpdatedOn]}
			}
		}
	}
	switch {
	case len(denied) > 0:
		r.add(CheckReadRights, Failed, "the integration user may not read "+strings.Join(denied, ", ")+
			" (403 Insufficient rights to query records)",
			"grant the integration user a role that reads "+strings.Join(denied, " and ")+" (itil reads incident, change_request and their journal)")
	case len(broken) > 0:
		r.add(CheckReadRights, Failed, "reading failed: "+strings.Join(broken, "; "), "run the check again; if it persists, check the instance's health")
	default:
		r.add(CheckReadRights, OK, "reads "+strings.Join(ok, ", "), "")
	}
}

// workNotes judges the right to add work notes from the user's roles,
// without writing to any record.
func (r *runner) workNotes(ctx context.Context) {
	if !r.userKnown() {
		r.add(CheckWorkNotes, Skipped, "the integration user is the OAuth application's user, which the gateway does not name: "+
			"check that it has the itil role", "")
		return
	}
	if r.user == nil {
		r.add(CheckWorkNotes, Failed, "no sys_user record with user_name "+r.t.Gateway.Username+" is readable",
			"let the integration user read its own sys_user record (or check the user name)")
		return
	}
	links, err := r.all(ctx, tableUserRole, servicenow.Query{
		Encoded: "user=" + r.user.SysID() + "^state=active", Fields: []string{"role"}, PageSize: 500,
	})
	if err != nil {
		r.add(CheckWorkNotes, Failed, "cannot read the user's roles (sys_user_has_role): "+err.Error(),
			"let the integration user read sys_user_has_role, or check by hand that it has the itil role")
		return
	}
	var ids []string
	for _, l := range links {
		if id := l["role"]; id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	var names []string
	if len(ids) > 0 {
		roles, err := r.all(ctx, tableRole, servicenow.Query{Encoded: "sys_idIN" + strings.Join(ids, ","), Fields: []string{"name"}, PageSize: 500})
		if err != nil {
			r.add(CheckWorkNotes, Failed, "cannot read role names (sys_user_role): "+err.Error(),
				"let the integration user read sys_user_role, or check by hand that it has the itil role")
			return
		}
		for _, ro := range roles {
			names = append(names, ro["name"])
		}
		slices.Sort(names)
	}
	var missing []string
	for _, table := range r.tables() {
		if !slices.ContainsFunc(workNoteRoles[table], func(role string) bool { return slices.Contains(names, role) }) {
			missing = append(missing, table)
		}
	}
	has := "no roles"
	if len(names) > 0 {
		has = "roles " + strings.Join(names, ", ")
	}
	if len(missing) > 0 {
		r.add(CheckWorkNotes, Failed, "user "+r.t.Gateway.Username+" has "+has+": none lets it add work notes to "+strings.Join(missing, ", "),
			"grant the integration user the itil role (User Administration > Users > Roles)")
		return
	}
	r.add(CheckWorkNotes, OK, "user "+r.t.Gateway.Username+" may add work notes ("+has+"; judged from roles, nothing written)", "")
}

func (r *runner) timeZone(context.Context) {
	const fix = "set the integration user's Time zone to UTC (User Administration > Users > the user > Time zone)"
	switch {
	case !r.userKnown():
		r.add(CheckTimeZone, Skipped, "the integration user is the OAuth application's user, which the gateway does not name: "+
			"check that its Time zone is UTC (the query canary below still tests how dates are read)", "")
	case r.user == nil:
		r.add(CheckTimeZone, Failed, "no sys_user record with user_name "+r.t.Gateway.Username+" is readable, so its time zone is unknown",
			"let the integration user read its own sys_user record (or check the user name), and set its Time zone to UTC")
	default:
		tz := r.user["time_zone"]
		switch tz {
		case "UTC", "Etc/UTC":
			r.add(CheckTimeZone, OK, "user "+r.t.Gateway.Username+" is in UTC", "")
		case "":
			r.add(CheckTimeZone, Failed, "user "+r.t.Gateway.Username+" has no time zone: it gets the system default "+
				"(the property glide.sys.default.tz, under System Properties > System), which is often not UTC", fix)
		default:
			r.add(CheckTimeZone, Failed, "user "+r.t.Gateway.Username+" is in "+tz+", not UTC: dates it reads and writes are off by its offset", fix)
		}
	}
}

// queryCanary bounds a record's own sys_updated_on, written as a plain
// literal: if the record is not returned, plain literals are not read as
// UTC, and the reconciler's watermark queries would miss changes.
func (r *runner) queryCanary(ctx context.Context) {
	c := r.canary
	if c.sysID == "" || c.updatedOn == "" {
		r.add(CheckQueryCanary, Skipped, "no readable "+strings.Join(r.tables(), " or ")+" record to test with", "")
		return
	}
	// Bounded on both sides, so that an offset either way (a zone west or
	// east of UTC) leaves the record out.
	q := servicenow.Query{
		Encoded: "sys_updated_on>=" + c.updatedOn + "^sys_updated_on<=" + c.updatedOn + "^sys_id=" + c.sysID,
		Fields:  []string{"sys_id"}, PageSize: 1,
	}
	recs, err := r.first(ctx, c.table, q)
	switch {
	case err != nil:
		r.add(CheckQueryCanary, Failed, "the canary query failed: "+err.Error(), "run the check again; if it persists, check the instance's health")
	case len(recs) == 0 || recs[0].SysID() != c.sysID:
		r.add(CheckQueryCanary, Failed, fmt.Sprintf("%s %s was not returned by sys_updated_on>=%[3]s^sys_updated_on<=%[3]s (its own sys_updated_on): "+
			"plain date literals are not read as UTC, so the reconciler would miss changes", c.table, c.sysID, c.updatedOn),
			"set the integration user's Time zone to UTC")
	default:
		r.add(CheckQueryCanary, OK, fmt.Sprintf("%s %s is found by its own sys_updated_on (%s) as a plain literal: dates are read as UTC",
			c.table, c.sysID, c.updatedOn), "")
	}
}

func (r *runner) filters(ctx context.Context) {
	g := r.t.Gateway
	groups := g.AssignmentGroups()
	if g.EscalationGroup != "" {
		groups = append(groups, g.EscalationGroup)
	}
	envs := g.Environments()
	if len(groups) == 0 && len(envs) == 0 {
		r.add(CheckFilters, OK, "no assignment group filter, escalation group or environment filter to look up", "")
		return
	}
	var problems, fixes, found []string
	if len(groups) > 0 {
		list := strings.Join(groups, ",")
		recs, err := r.all(ctx, tableGroup, servicenow.Query{Encoded: "sys_idIN" + list + "^ORnameIN" + list, Fields: []string{"sys_id", "name"}, PageSize: 500})
		if err != nil {
			problems = append(problems, "cannot read sys_user_group: "+err.Error())
			fixes = append(fixes, "let the integration user read sys_user_group")
		} else {
			var missing []string
			for _, want := range groups {
				if !slices.ContainsFunc(recs, func(rec servicenow.Record) bool { return rec.SysID() == want || rec["name"] == want }) {
					missing = append(missing, want)
				}
			}
			if len(missing) > 0 {
				problems = append(problems, "no sys_user_group named or with sys_id "+quoteAll(missing))
				fixes = append(fixes, "create the group, or change the gateway's --assignment-group-filter / --escalation-group to existing groups (names match exactly, case included)")
			} else {
				found = append(found, fmt.Sprintf("%d group(s) exist", len(groups)))
			}
		}
	}
	if len(envs) > 0 {
		tables := r.tables()
		// A field of task is inherited by incident and change_request and
		// listed under task.
		recs, err := r.all(ctx, tableDictionary, servicenow.Query{
			Encoded: "nameIN" + strings.Join(append(slices.Clone(tables), "task"), ",") + "^element=" + environmentField,
			Fields:  []string{"name", "element"}, PageSize: 100,
		})
		if err != nil {
			problems = append(problems, "cannot read sys_dictionary: "+err.Error())
			fixes = append(fixes, "let the integration user read sys_dictionary, or check by hand that "+environmentField+" exists")
		} else {
			var missing []string
			for _, t := range tables {
				if !slices.ContainsFunc(recs, func(rec servicenow.Record) bool { return rec["name"] == t || rec["name"] == "task" }) {
					missing = append(missing, t)
				}
			}
			if len(missing) > 0 {
				verb := " lacks"
				if len(missing) > 1 {
					verb = " lack"
				}
				problems = append(problems, "the environment filter reads "+environmentField+", which "+strings.Join(missing, " and ")+verb)
				fixes = append(fixes, "add the field "+environmentField+" to "+strings.Join(missing, " and ")+" (or to task), or clear --environment-filter")
			} else {
				found = append(found, environmentField+" exists on "+strings.Join(tables, ", "))
			}
		}
	}
	if len(problems) > 0 {
		r.add(CheckFilters, Failed, strings.Join(problems, "; "), strings.Join(fixes, "; "))
		return
	}
	r.add(CheckFilters, OK, strings.Join(found, "; "), "")
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// RuleName is the name of a webhook's Business Rule, as
// businessrule.Render names it.
func RuleName(w registry.Webhook) string {
	r, err := businessrule.Render(businessrule.Params{WebhookName: w.Name, Table: w.EventType, URL: "https://x", Signing: registry.SigningSecret, Secret: "x"})
	if err != nil {
		return "snowgate: " + w.Name
	}
	return r.Name
}

func (r *runner) businessRules(ctx context.Context) {
	var hooks []registry.Webhook
	for _, w := range r.t.Webhooks {
		if w.Active {
			hooks = append(hooks, w)
		}
	}
	if len(hooks) == 0 {
		r.add(CheckBusinessRules, OK, "the gateway has no active webhook, so no Business Rule to look for", "")
		return
	}
	var names []string
	for _, w := range hooks {
		names = append(names, RuleName(w))
	}
	recs, err := r.all(ctx, tableScript, servicenow.Query{
		Encoded: "nameIN" + strings.Join(names, ","), Fields: []string{"sys_id", "name", "collection", "active", "sys_scope"}, PageSize: 500,
	})
	if err != nil {
		fix := "let the integration user read sys_script, or check the rules by hand"
		if errors.Is(err, servicenow.ErrForbidden) {
			fix = "let the integration user read sys_script (a read ACL or the role that grants it), or check the rules by hand: " + strings.Join(names, ", ")
		}
		r.add(CheckBusinessRules, Failed, "cannot read sys_script: "+err.Error(), fix)
		return
	}
	scopes := r.scopeNames(ctx, recs)
	var problems, fixes []string
	for i, w := range hooks {
		name := names[i]
		var mine []servicenow.Record
		for _, rec := range recs {
			if rec["name"] == name && rec["collection"] == w.EventType {
				mine = append(mine, rec)
			}
		}
		switch {
		case len(mine) == 0:
			problems = append(problems, fmt.Sprintf("%q on %s is missing", name, w.EventType))
			fixes = append(fixes, fmt.Sprintf("create it, in the Global application scope, from what 2501 infra webhook create printed "+
				"(lost? 2501 infra webhook rotate-secret --id %s prints it again, with a new secret)", w.ID))
		case !slices.ContainsFunc(mine, func(rec servicenow.Record) bool { return rec["active"] == "true" && rec["sys_scope"] == globalScope }):
			rec := mine[0]
			if rec["sys_scope"] != globalScope {
				problems = append(problems, fmt.Sprintf("%q on %s is in the application scope %s, not Global", name, w.EventType, scopes(rec["sys_scope"])))
				fixes = append(fixes, "delete it and create it again with the application picker set to Global (GlideCertificateEncryption exists only there)")
			}
			if rec["active"] != "true" {
				problems = append(problems, fmt.Sprintf("%q on %s is inactive", name, w.EventType))
				fixes = append(fixes, fmt.Sprintf("tick Active on the Business Rule %q", name))
			}
		}
	}
	if len(problems) > 0 {
		r.add(CheckBusinessRules, Failed, strings.Join(problems, "; "), strings.Join(fixes, "; "))
		return
	}
	r.add(CheckBusinessRules, OK, fmt.Sprintf("%d rule(s) present, active, in Global: %s", len(names), strings.Join(names, ", ")), "")
}

// scopeNames returns a function naming the application scopes of rules
// that are not in Global by their sys_scope scope (x_acme_app), or by
// sys_id when sys_scope cannot be read.
func (r *runner) scopeNames(ctx context.Context, rules []servicenow.Record) func(string) string {
	var ids []string
	for _, rec := range rules {
		if id := rec["sys_scope"]; id != "" && id != globalScope && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	names := map[string]string{}
	if len(ids) > 0 {
		recs, err := r.all(ctx, "sys_scope", servicenow.Query{Encoded: "sys_idIN" + strings.Join(ids, ","), Fields: []string{"sys_id", "scope"}, PageSize: 100})
		if err == nil {
			for _, rec := range recs {
				names[rec.SysID()] = rec["scope"]
			}
		}
	}
	return func(id string) string {
		if n := names[id]; n != "" {
			return n
		}
		if id == "" {
			return "(none)"
		}
		return id
	}
}
