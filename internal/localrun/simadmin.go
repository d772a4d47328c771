package localrun

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/snowgate/snowgate/internal/snowsim"
)

// maxRuleBytes bounds a pasted Business Rule.
const maxRuleBytes = 1 << 20

// simHandler serves the simulator's Table API plus admin endpoints that
// only make dev has, for what a ServiceNow administrator does by hand:
//
//	POST /sim/outbound?enabled=false          switch outbound calls (webhooks) off or on
//	POST /sim/business_rules                  add (or replace, by name) a Business Rule
//	GET  /sim/stats                           the simulator's counters (SimStats)
//	POST /sim/properties?name=…&value=…       set a system property (glide.invalid_query.returns_no_rows, …)
//	POST /sim/hibernate?enabled=true          put the instance to sleep (every answer an HTML page) or wake it
//	POST /sim/rate_limits                     replace the rate limit rules: [{"name","user","limit","window_seconds"}]
//
// A rule is posted either as JSON, the output of `2501 infra webhook create
// --output json` or just its business_rule ({"name","table","condition",
// "script","insert","update"}), or as the bare script (any other content
// type) with ?table=incident and optionally &name= and &condition=; insert
// and update are on unless set to false.
func simHandler(sim *snowsim.Sim, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sim/outbound", func(w http.ResponseWriter, r *http.Request) {
		on, err := strconv.ParseBool(r.URL.Query().Get("enabled"))
		if err != nil {
			http.Error(w, "want ?enabled=true or ?enabled=false", http.StatusBadRequest)
			return
		}
		sim.SetOutbound(on)
		log.Info("simulator outbound calls switched", "enabled", on)
		writeAdmin(w, http.StatusOK, map[string]any{"outbound": on})
	})
	mux.HandleFunc("POST /sim/business_rules", func(w http.ResponseWriter, r *http.Request) {
		rule, err := ruleFrom(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := sim.AddBusinessRule(rule); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		log.Info("business rule loaded", "name", rule.Name, "table", rule.Table)
		writeAdmin(w, http.StatusCreated, map[string]any{"name": rule.Name, "table": rule.Table})
	})
	mux.HandleFunc("POST /sim/properties", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		name := q.Get("name")
		if name == "" {
			http.Error(w, "want ?name=<property>&value=<value>", http.StatusBadRequest)
			return
		}
		sim.SetProperty(name, q.Get("value"))
		log.Info("simulator property set", "name", name, "value", q.Get("value"))
		writeAdmin(w, http.StatusOK, map[string]any{"name": name, "value": q.Get("value")})
	})
	mux.HandleFunc("POST /sim/hibernate", func(w http.ResponseWriter, r *http.Request) {
		on, err := strconv.ParseBool(r.URL.Query().Get("enabled"))
		if err != nil {
			http.Error(w, "want ?enabled=true or ?enabled=false", http.StatusBadRequest)
			return
		}
		sim.SetHibernating(on)
		log.Info("simulator hibernation switched", "enabled", on)
		writeAdmin(w, http.StatusOK, map[string]any{"hibernating": on})
	})
	mux.HandleFunc("POST /sim/rate_limits", func(w http.ResponseWriter, r *http.Request) {
		var rules []struct {
			Name          string `json:"name"`
			User          string `json:"user"`
			Limit         int    `json:"limit"`
			WindowSeconds int    `json:"window_seconds"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, maxRuleBytes)).Decode(&rules); err != nil {
			http.Error(w, "want a JSON list of {name, user, limit, window_seconds}", http.StatusBadRequest)
			return
		}
		out := make([]snowsim.RateLimitRule, 0, len(rules))
		for _, rl := range rules {
			out = append(out, snowsim.RateLimitRule{Name: rl.Name, User: rl.User, Limit: rl.Limit,
				Window: time.Duration(rl.WindowSeconds) * time.Second})
		}
		sim.SetRateLimits(out...)
		log.Info("simulator rate limit rules set", "rules", len(out))
		writeAdmin(w, http.StatusOK, map[string]any{"rules": len(out)})
	})
	mux.HandleFunc("GET /sim/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeAdmin(w, http.StatusOK, simStats(sim.Stats()))
	})
	mux.Handle("/", sim)
	return mux
}

// SimStats are the simulator's counters as GET /sim/stats shows them: the
// Business Rules' outbound calls (webhooks) and what became of them.
type SimStats struct {
	// OutboundAttempted counts webhook calls; OutboundFailed those that got
	// no HTTP response (timed out, connection refused or reset, outbound
	// off); OutboundStatus the responses by status code.
	OutboundAttempted int            `json:"outbound_attempted"`
	OutboundFailed    int            `json:"outbound_failed"`
	OutboundStatus    map[string]int `json:"outbound_status"`
	RulesFired        int            `json:"rules_fired"`
	RuleErrors        int            `json:"rule_errors"`
}

func simStats(st snowsim.Stats) SimStats {
	out := SimStats{
		OutboundAttempted: st.OutboundAttempted, OutboundFailed: st.OutboundFailed,
		OutboundStatus: map[string]int{}, RulesFired: st.RulesFired, RuleErrors: st.RuleErrors,
	}
	for code, n := range st.OutboundStatus {
		out.OutboundStatus[strconv.Itoa(code)] = n
	}
	return out
}

func ruleFrom(r *http.Request) (snowsim.Rule, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRuleBytes))
	if err != nil {
		return snowsim.Rule{}, fmt.Errorf("read rule: %w", err)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		type rule struct {
			Name      string `json:"name"`
			Table     string `json:"table"`
			Condition string `json:"condition"`
			Script    string `json:"script"`
			Insert    *bool  `json:"insert"`
			Update    *bool  `json:"update"`
		}
		// A rule, or the CLI's whole --output json view of a new webhook.
		var doc struct {
			rule
			BusinessRule *rule `json:"business_rule"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return snowsim.Rule{}, fmt.Errorf("decode rule: %w", err)
		}
		rl := doc.rule
		if doc.BusinessRule != nil {
			rl = *doc.BusinessRule
		}
		return snowsim.Rule{
			Name: orDefault(rl.Name, "pasted: "+rl.Table), Table: rl.Table,
			Condition: rl.Condition, Script: rl.Script,
			Insert: rl.Insert == nil || *rl.Insert, Update: rl.Update == nil || *rl.Update,
		}, nil
	}
	q := r.URL.Query()
	table := q.Get("table")
	if table == "" {
		return snowsim.Rule{}, fmt.Errorf("a bare script needs ?table=incident or ?table=change_request")
	}
	return snowsim.Rule{
		Name: orDefault(q.Get("name"), "pasted: "+table), Table: table,
		Condition: q.Get("condition"), Script: string(body),
		Insert: q.Get("insert") != "false", Update: q.Get("update") != "false",
	}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func writeAdmin(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
