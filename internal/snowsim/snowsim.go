// Package snowsim is an in-memory ServiceNow instance for tests and local
// runs. It speaks the Table API subset snowgate uses (records, encoded
// queries, Link pagination, basic and OAuth auth, ServiceNow's JSON error
// shapes), takes inserts and updates through that API as a real instance
// does, injects faults on demand (latency, 429, 5xx, dropped connections,
// ACL-hidden records, quota-cancelled answers) and runs Business Rule
// scripts in a JavaScript engine with the Glide shims webhook scripts use,
// so the script handed to users is exercised end to end.
//
// It holds to ServiceNow's documented behaviour where a consumer could
// come to depend on the difference, each with the instance's default and
// an option where an instance setting changes it:
//
//   - comments and work notes are sys_journal_field records; a journal
//     write bumps sys_mod_count and fires update rules; the field reads "";
//   - a table the user may not read answers 403 (WithReadDenied), a hidden
//     row 404;
//   - an invalid encoded-query term is dropped, not answered with no rows
//     (PropInvalidQueryNoRows);
//   - Business Rule conditions compare strings case-sensitively, database
//     queries case-insensitively (WithCaseSensitiveQueries);
//   - Business Rule conditions compare with the record before the change
//     (VALCHANGES, CHANGESFROM, CHANGESTO); a Table API query has no
//     record before, and the simulator drops those terms there as invalid;
//   - rate limit rules count per user per hour (RateLimitRule); API threads
//     have a bounded queue (APISemaphore);
//   - executeAsync calls pass through an ECC queue: late, reordered,
//     sometimes sent twice (ECCQueue);
//   - a hibernating instance answers HTML (SetHibernating);
//   - the OAuth client credentials grant is off (PropOAuthClientCredentials);
//     basic auth can be restricted to web service users
//     (WithBasicAuthRestricted);
//   - references are stored as given unless sysparm_input_display_value=true;
//   - sys_user, sys_user_has_role, sys_user_group, sys_dictionary and
//     sys_script describe the instance's setup.
package snowsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPageLimit is ServiceNow's default sysparm_limit.
const DefaultPageLimit = 10000

// DefaultTokenTTL is the lifetime of an OAuth access token, as on a
// ServiceNow instance out of the box.
const DefaultTokenTTL = 30 * time.Minute

// Sim is a simulated ServiceNow instance. It is an http.Handler and safe
// for concurrent use.
type Sim struct {
	clock     func() time.Time
	logger    *slog.Logger
	pageLimit int
	mux       *http.ServeMux
	client    *http.Client
	// scriptTimeout bounds the JavaScript part of a Business Rule run.
	scriptTimeout time.Duration
	// caseSensitiveQueries makes Table API queries compare strings
	// case-sensitively (WithCaseSensitiveQueries).
	caseSensitiveQueries bool

	mu     sync.RWMutex // tables and rules
	tables map[string]*table
	rules  []*compiledRule

	auth authState

	propMu     sync.RWMutex
	properties map[string]string

	// userTZ and userRoles configure the sys_user records written at New.
	userTZ    map[string]string
	userRoles map[string][]string

	aclMu    sync.RWMutex
	denyRead map[string]bool // "user/table" without table read rights

	limits rateLimits
	sem    semaphore

	faultMu sync.Mutex
	faults  faultState
	chaos   chaosState // OutboundFaults and ReadFaults

	hibernating atomic.Bool

	outMu    sync.Mutex
	outbound bool
	inflight int
	idle     chan struct{} // closed when inflight drops to zero

	statsMu sync.Mutex
	stats   Stats
}

// Option configures a Sim.
type Option func(*Sim)

// WithClock sets the clock for sys_created_on/sys_updated_on, token expiry,
// rate-limit windows and GlideDateTime (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Sim) { s.clock = now } }

// WithUser adds a user accepted by basic auth and the OAuth password grant.
// A Sim with no user and no OAuth client accepts unauthenticated requests.
func WithUser(user, pass string) Option {
	return func(s *Sim) { s.auth.users[user] = pass }
}

// WithOAuthClient adds an OAuth application registry entry.
func WithOAuthClient(id, secret string) Option {
	return func(s *Sim) { s.auth.clients[id] = secret }
}

// WithTokenTTL sets the access token lifetime (default DefaultTokenTTL).
func WithTokenTTL(d time.Duration) Option { return func(s *Sim) { s.auth.ttl = d } }

// WithLogger sets where Business Rule logs (gs.info...) and script errors go
// (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(s *Sim) { s.logger = l } }

// WithPageLimit caps sysparm_limit and is the limit when none is given
// (default DefaultPageLimit).
func WithPageLimit(n int) Option {
	return func(s *Sim) {
		if n > 0 {
			s.pageLimit = n
		}
	}
}

// WithHTTPClient sets the client RESTMessageV2 uses for outbound calls.
func WithHTTPClient(c *http.Client) Option { return func(s *Sim) { s.client = c } }

// WithScriptTimeout bounds how long a Business Rule script may run
// JavaScript before it is interrupted (default DefaultScriptTimeout).
func WithScriptTimeout(d time.Duration) Option { return func(s *Sim) { s.scriptTimeout = d } }

// WithProperty sets a system property read by gs.getProperty.
func WithProperty(name, value string) Option {
	return func(s *Sim) { s.properties[name] = value }
}

// WithCaseSensitiveQueries makes encoded queries of the Table API compare
// strings case-sensitively (short_description=Disk full no longer matches
// "disk full"), as on an instance whose database or column collation is
// case-sensitive. The default is case-insensitive, as on ServiceNow's
// default databases. Business Rule conditions are case-sensitive either
// way.
func WithCaseSensitiveQueries(on bool) Option {
	return func(s *Sim) { s.caseSensitiveQueries = on }
}

// WithReadDenied takes the read right on tables away from user, as a table
// ACL that user's roles do not satisfy: queries and reads of those tables
// answer 403 "Insufficient rights to query records".
func WithReadDenied(user string, tables ...string) Option {
	return func(s *Sim) {
		for _, t := range tables {
			s.denyRead[user+"/"+t] = true
		}
	}
}

// New returns a Sim with empty incident, change_request and sys_user_group
// tables and outbound HTTP switched on.
func New(opts ...Option) *Sim {
	s := &Sim{
		clock:         time.Now,
		logger:        slog.New(slog.DiscardHandler),
		pageLimit:     DefaultPageLimit,
		client:        &http.Client{},
		scriptTimeout: DefaultScriptTimeout,
		tables:        newTables(),
		auth:          newAuthState(),
		properties:    map[string]string{PropInstanceName: DefaultInstanceName},
		denyRead:      map[string]bool{},
		userTZ:        map[string]string{},
		userRoles:     map[string][]string{},
		limits:        rateLimits{counts: map[string]*rateCount{}},
		outbound:      true,
		stats:         newStats(),
	}
	s.chaos.ecc = ECCQueue{Delay: DefaultECCDelay}
	s.chaos.eccRng = seeded(0)
	for _, o := range opts {
		o(s)
	}
	s.seedUsersLocked()
	s.faults.reset(Faults{})
	s.mux = s.routes()
	return s
}

// SetProperty sets a system property read by gs.getProperty.
func (s *Sim) SetProperty(name, value string) {
	s.propMu.Lock()
	defer s.propMu.Unlock()
	s.properties[name] = value
}

// SetReadDenied takes the read right on a table away from a user (denied)
// or gives it back; see WithReadDenied.
func (s *Sim) SetReadDenied(user, table string, denied bool) {
	s.aclMu.Lock()
	defer s.aclMu.Unlock()
	if denied {
		s.denyRead[user+"/"+table] = true
	} else {
		delete(s.denyRead, user+"/"+table)
	}
}

func (s *Sim) canRead(user, table string) bool {
	s.aclMu.RLock()
	defer s.aclMu.RUnlock()
	return !s.denyRead[user+"/"+table]
}

// PropInstanceName is the system property holding the instance's name, the
// first label of its host name on ServiceNow's cloud (acme for
// acme.service-now.com); a clone keeps its own. The printed Business Rule
// compares it with the name it was printed for.
const PropInstanceName = "instance_name"

// DefaultInstanceName is the simulator's instance_name unless WithProperty
// or SetProperty sets another: every instance has one.
const DefaultInstanceName = "snowsim"

// PropInvalidQueryNoRows is the system property that makes an encoded query
// with an invalid term return no rows; by default (unset or false) the
// invalid term is dropped and the rest of the query runs.
const PropInvalidQueryNoRows = "glide.invalid_query.returns_no_rows"

// propertyTrue reports whether a system property is set to "true".
func (s *Sim) propertyTrue(name string) bool {
	v, _ := s.property(name)
	return strings.EqualFold(v, "true")
}

func (s *Sim) property(name string) (string, bool) {
	s.propMu.RLock()
	defer s.propMu.RUnlock()
	v, ok := s.properties[name]
	return v, ok
}

// WithHibernating starts the Sim hibernating; see SetHibernating.
func WithHibernating() Option { return func(s *Sim) { s.hibernating.Store(true) } }

// SetHibernating puts the instance to sleep or wakes it. A hibernating
// developer instance answers every request, API calls and token requests
// alike, with 200 and an HTML page asking its owner to wake it; nothing is
// served and no Business Rule runs.
func (s *Sim) SetHibernating(on bool) { s.hibernating.Store(on) }

// Hibernating reports whether the instance is hibernating.
func (s *Sim) Hibernating() bool { return s.hibernating.Load() }

// writeHibernating writes the page a hibernating instance serves.
func writeHibernating(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "<!DOCTYPE html>\n<html><head><title>Instance hibernating</title></head>"+
		"<body><h1>This instance is hibernating</h1>"+
		"<p>Sign in to the developer portal to wake it up.</p></body></html>\n")
}

// SetOutbound switches outbound HTTP (RESTMessageV2) on or off. Off, every
// call fails as an unreachable endpoint would: webhooks are lost while
// Business Rules keep running.
func (s *Sim) SetOutbound(enabled bool) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	s.outbound = enabled
}

func (s *Sim) outboundEnabled() bool {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.outbound
}

// startAsync and endAsync track RESTMessageV2.executeAsync calls in flight.
func (s *Sim) startAsync() {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if s.inflight == 0 {
		s.idle = make(chan struct{})
	}
	s.inflight++
}

func (s *Sim) endAsync() {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	s.inflight--
	if s.inflight == 0 {
		close(s.idle)
	}
}

// WaitOutbound waits until no executeAsync call is in flight, or ctx ends.
func (s *Sim) WaitOutbound(ctx context.Context) error {
	for {
		s.outMu.Lock()
		if s.inflight == 0 {
			s.outMu.Unlock()
			return nil
		}
		idle := s.idle
		s.outMu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("wait for outbound calls: %w", ctx.Err())
		}
	}
}

// Records returns a snapshot of a table's records in insertion order
// (nil for an unknown table). Journal fields read as "", as in the API.
func (s *Sim) Records(table string) []map[string]string {
	s.syncGenerated(table)
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.tables[table]
	if !ok {
		return nil
	}
	out := make([]map[string]string, 0, len(t.rows))
	for _, r := range t.rows {
		out = append(out, maps.Clone(r.fields))
	}
	return out
}

// Record returns a snapshot of one record.
func (s *Sim) Record(table, sysID string) (map[string]string, bool) {
	s.syncGenerated(table)
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.tables[table]
	if !ok {
		return nil, false
	}
	r := t.byID[sysID]
	if r == nil {
		return nil, false
	}
	return maps.Clone(r.fields), true
}

// WorkNotes returns the work notes journaled on a record (its
// sys_journal_field entries), oldest first.
func (s *Sim) WorkNotes(table, sysID string) []string {
	return s.Journal(table, sysID, "work_notes")
}

// Journal returns the entries of a record's journal field ("comments" or
// "work_notes"), oldest first.
func (s *Sim) Journal(table, sysID, element string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.journalLocked(table, sysID, element)
}

// Insert adds a record as a POST to the Table API does, firing Business
// Rules; it returns the record written. Reference fields are stored as
// given (a sys_id), as without sysparm_input_display_value.
func (s *Sim) Insert(table string, fields map[string]string) (map[string]string, error) {
	s.mu.Lock()
	c, err := s.insertLocked(table, fields, "admin", false, false)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	s.fireRules(c, "admin")
	return c.after, nil
}

// Update changes a record as a PATCH to the Table API does, firing Business
// Rules when something changed; it returns the record after the update.
// Reference fields are stored as given, as in Insert.
func (s *Sim) Update(table, sysID string, fields map[string]string) (map[string]string, error) {
	s.mu.Lock()
	c, err := s.updateLocked(table, sysID, fields, "admin", false)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	s.fireRules(c, "admin")
	return c.after, nil
}

// Seed loads records from a JSON fixture
// {"incident":[{...}],"change_request":[...],"sys_user_group":[...]}.
// Values may be strings, numbers or booleans. Groups, users and roles load
// first, and a fixture may name a reference by display value (a group's
// name): fixtures resolve it, as a write with
// sysparm_input_display_value=true would. No Business Rule fires.
func (s *Sim) Seed(r io.Reader) error {
	var fx map[string][]map[string]any
	if err := json.NewDecoder(r).Decode(&fx); err != nil {
		return fmt.Errorf("decode fixture: %w", err)
	}
	names := slices.Sorted(maps.Keys(fx))
	// Groups, users and roles sort last; references need them first.
	for _, first := range []string{TableUserRole, TableRole, TableUser, TableUserGroup} {
		if i := slices.Index(names, first); i >= 0 {
			names = append([]string{first}, slices.Delete(names, i, i+1)...)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		for i, raw := range fx[name] {
			in, err := stringFields(raw)
			if err != nil {
				return fmt.Errorf("fixture %s[%d]: %w", name, i, err)
			}
			if _, err := s.insertLocked(name, in, "admin", true, true); err != nil {
				return fmt.Errorf("fixture %s[%d]: %w", name, i, err)
			}
		}
	}
	return nil
}

// Server is a Sim listening on a TCP address.
type Server struct {
	URL string
	Sim *Sim
	srv *http.Server
}

// Start serves a new Sim on addr ("127.0.0.1:0" picks a free port).
func Start(addr string, opts ...Option) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	sim := New(opts...)
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // returns ErrServerClosed on Close
	return &Server{URL: "http://" + ln.Addr().String(), Sim: sim, srv: srv}, nil
}

// Close stops the server and closes its connections.
func (s *Server) Close() { _ = s.srv.Close() }
