package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/snowgate/snowgate/internal/demoengine"
	"github.com/snowgate/snowgate/internal/registry"
)

// Storm is one storm run: thousands of changes in a few minutes to the
// records of one gateway whose instance allows far fewer requests a
// minute, with write-back on, measured by the simulator's request log.
type Storm struct {
	Settings StormSettings
	// Started is when the first change was made.
	Started time.Time
	// Changes counts the distinct changes people made (inserts and
	// updates) that fired the gateway's Business Rule, each once however
	// often the rule ran for it; Firings counts the rule's webhook calls
	// for them (duplicates included); Echoes the distinct changes of our
	// own write-backs that fired it.
	Changes, Firings, Echoes int
	// Records is how many incidents the storm created.
	Records int
	// Calls is every ServiceNow request of every function from the first
	// change to the end of the drain; MaxCallsPerMin the most in any 60 s
	// sliding window; HTTP429 the answers 429.
	Calls, MaxCallsPerMin, HTTP429 int
	// CallsByKind counts the requests by what they were ("GET record",
	// "PATCH record"…) and answer.
	CallsByKind map[string]int
	// DeadLetters is the messages in every dead-letter queue at the end.
	DeadLetters int
	// Lost counts records whose latest version never reached a decision.
	Lost int
	// Drained reports whether every record's latest version was decided
	// and the queues were empty before the wait ended; Drain is the time
	// from the first change to the last decision (to the end of the wait
	// when not drained).
	Drained bool
	Drain   time.Duration
	// Series are the samples the plot draws.
	Series StormSeries
	// Errors counts the system's warning and error log lines, by program
	// and message.
	Errors map[string]int
	// Notes are what the run noticed on the way.
	Notes []string
	// LoadBefore and LoadAfter are the machine's load averages.
	LoadBefore, LoadAfter string
}

// StormSettings are the sizes of a storm.
type StormSettings struct {
	// Records incidents are created and each updated Updates times, all
	// within Duration; duplicate firing makes the rule run twice for
	// DuplicateRate of the changes.
	Records, Updates int
	Duration         time.Duration
	DuplicateRate    float64
	// QuotaPerMin is the instance's rate limit rule for the integration
	// user, per one-minute window.
	QuotaPerMin int
	// RatePerHour and MaxConcurrency are the gateway's budget.
	RatePerHour, MaxConcurrency int
	// Wait bounds the drain after the last change.
	Wait time.Duration
}

// StormSample is the system at one moment of a storm.
type StormSample struct {
	// At is the time since the first change.
	At time.Duration
	// Backlog counts the changes made so far whose record has no decision
	// at or past them.
	Backlog int
}

// StormSeries are what the plot draws: the backlog over time, and the
// ServiceNow requests in the 60 s up to each second.
type StormSeries struct {
	Backlog []StormSample
	// CallsPerMin[i] counts the requests in the minute up to second i+1,
	// Rejected429PerMin those of them answered 429.
	CallsPerMin, Rejected429PerMin []int
}

// CallsPerChange is all ServiceNow requests divided by the changes.
func (s Storm) CallsPerChange() float64 {
	if s.Changes == 0 {
		return 0
	}
	return float64(s.Calls) / float64(s.Changes)
}

// IdealDrain is the changes divided by the quota: how long the storm takes
// at one request per change and the instance's whole quota.
func (s Storm) IdealDrain() time.Duration {
	if s.Settings.QuotaPerMin <= 0 {
		return 0
	}
	return time.Duration(float64(s.Changes) / float64(s.Settings.QuotaPerMin) * float64(time.Minute))
}

// Line is the storm's one-line summary, as the bench prints it.
func (s Storm) Line() string {
	return fmt.Sprintf("storm: changes=%d quota_per_min=%d max_calls_per_min=%d calls_per_change=%.2f http_429=%d dead_letters=%d lost=%d drain_s=%.0f",
		s.Changes, s.Settings.QuotaPerMin, s.MaxCallsPerMin, s.CallsPerChange(), s.HTTP429, s.DeadLetters, s.Lost, s.Drain.Seconds())
}

// Targets of a storm.
const (
	// StormCallsPerChangeTarget bounds the requests per change.
	StormCallsPerChangeTarget = 1.5
	// StormDrainTolerance is how far above changes ÷ quota the drain may
	// end.
	StormDrainTolerance = 0.10
)

// Misses lists the targets the storm did not meet; none: all met.
func (s Storm) Misses() []string {
	var m []string
	if s.Lost > 0 {
		m = append(m, fmt.Sprintf("%d records lost", s.Lost))
	}
	if s.DeadLetters > 0 {
		m = append(m, fmt.Sprintf("%d dead letters", s.DeadLetters))
	}
	if s.MaxCallsPerMin > s.Settings.QuotaPerMin {
		m = append(m, fmt.Sprintf("%d calls in a minute, quota %d", s.MaxCallsPerMin, s.Settings.QuotaPerMin))
	}
	if cpc := s.CallsPerChange(); cpc > StormCallsPerChangeTarget {
		m = append(m, fmt.Sprintf("%.2f calls per change", cpc))
	}
	ideal := s.IdealDrain()
	if limit := time.Duration(float64(ideal) * (1 + StormDrainTolerance)); !s.Drained || s.Drain > limit {
		what := fmt.Sprintf("drain %.0f s, changes ÷ quota %.0f s", s.Drain.Seconds(), ideal.Seconds())
		if !s.Drained {
			what = fmt.Sprintf("not drained after %.0f s (changes ÷ quota %.0f s)", s.Drain.Seconds(), ideal.Seconds())
		}
		m = append(m, what)
	}
	return m
}

// MaxInWindow is the most of the sorted times that fall in any window of
// length w, [t, t+w).
func MaxInWindow(sorted []time.Time, w time.Duration) int {
	best, lo := 0, 0
	for hi, t := range sorted {
		for !sorted[lo].Add(w).After(t) {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// PerWindow counts, for each whole second s from 1 to the end of span after
// start, the sorted times in the window (start+s−w, start+s]: a rate over
// time, as a plot draws it.
func PerWindow(sorted []time.Time, start time.Time, span, w time.Duration) []int {
	n := int((span + time.Second - 1) / time.Second)
	out := make([]int, n)
	lo, hi := 0, 0
	for i := range n {
		end := start.Add(time.Duration(i+1) * time.Second)
		for hi < len(sorted) && !sorted[hi].After(end) {
			hi++
		}
		for lo < hi && !sorted[lo].After(end.Add(-w)) {
			lo++
		}
		out[i] = hi - lo
	}
	return out
}

// stormTable writes the storm's table, one row per run, and what each run
// missed.
func stormTable(p func(string, ...any), storms []Storm) {
	p("| run | changes (records, echoes of our writes) | quota / min | budget | max calls / min | calls / change | 429s | dead letters | lost | drain | changes ÷ quota |\n" +
		"|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, s := range storms {
		drain := fmt.Sprintf("%.0f s", s.Drain.Seconds())
		if !s.Drained {
			drain = "not drained in " + drain
		}
		p("| %d | %d (%d, %d) | %d | %d/h, %d at once | %d | %.2f | %d | %d | %d | %s | %.0f s |\n", i+1,
			s.Changes, s.Records, s.Echoes, s.Settings.QuotaPerMin, s.Settings.RatePerHour, s.Settings.MaxConcurrency,
			s.MaxCallsPerMin, s.CallsPerChange(), s.HTTP429, s.DeadLetters, s.Lost, drain, s.IdealDrain().Seconds())
	}
	p("\nTargets: no record lost, no dead letter, never more calls in a minute than the quota, at most %.1f calls per change, "+
		"drained within %.0f %% of changes ÷ quota.", StormCallsPerChangeTarget, StormDrainTolerance*100)
	var misses []string
	for i, s := range storms {
		if m := s.Misses(); len(m) > 0 {
			misses = append(misses, fmt.Sprintf("run %d: %s", i+1, strings.Join(m, ", ")))
		}
	}
	if len(misses) == 0 {
		p(" Met in every run.\n")
	} else {
		p(" Not met: %s.\n", strings.Join(misses, "; "))
	}
	for i, s := range storms {
		p("\nRun %d: %d webhook calls for the changes (duplicates included); ServiceNow requests: %s", i+1, s.Firings, kinds(s.CallsByKind))
		if len(s.Errors) > 0 {
			var es []string
			for _, k := range sortedKeys(s.Errors) {
				es = append(es, fmt.Sprintf("%s (%d)", k, s.Errors[k]))
			}
			p("; warnings and errors logged: %s", strings.Join(es, ", "))
		}
		p(".\n")
		for _, n := range s.Notes {
			p("\n- %s\n", strings.ReplaceAll(n, "\n", " "))
		}
	}
}

// kinds lists request counts, the largest first.
func kinds(m map[string]int) string {
	keys := sortedKeys(m)
	slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// stormSettings are the storm's sizes: a thousand changes in 40 s
// against a quota of 600 requests a minute for make bench-quick (changes ÷
// quota 100 s), 2 500 in 100 s for make bench (250 s). The budget is set
// below the quota: its rate a minute plus its burst stay 2 % under it, so
// no 60 s can hold more requests than the instance allows.
func (o Options) stormSettings() StormSettings {
	set := StormSettings{Records: 500, Updates: 4, Duration: 100 * time.Second, DuplicateRate: 0.1, QuotaPerMin: 600,
		MaxConcurrency: 4, Wait: 10 * time.Minute}
	if o.Quick {
		set.Records, set.Duration, set.Wait = 200, 40*time.Second, 6*time.Minute
	}
	c := o.Storm
	for _, f := range []struct{ to, from *int }{{&set.Records, &c.Records}, {&set.Updates, &c.Updates},
		{&set.QuotaPerMin, &c.QuotaPerMin}, {&set.RatePerHour, &c.RatePerHour}, {&set.MaxConcurrency, &c.MaxConcurrency}} {
		if *f.from > 0 {
			*f.to = *f.from
		}
	}
	if c.Duration > 0 {
		set.Duration = c.Duration
	}
	if c.Wait > 0 {
		set.Wait = c.Wait
	}
	if set.RatePerHour == 0 {
		set.RatePerHour = BudgetBelow(set.QuotaPerMin)
	}
	return set
}

// BudgetBelow is the gateway's rate (requests an hour) for an instance
// that allows quotaPerMin requests a minute: with the burst that comes
// with it (registry.BurstFor), a minute's rate plus the burst stay 2 %
// under the quota.
func BudgetBelow(quotaPerMin int) int {
	perMin := quotaPerMin - quotaPerMin/50 - 1
	for rate := perMin * 60; rate > 0; rate -= 60 {
		if rate/60+registry.BurstFor(rate) <= perMin {
			return rate
		}
	}
	return 1
}

// Ran reports whether the part was measured.
func (r *Report) Ran(part string) bool { return r.ran(part) }

// StormMarkdown writes the storm's section of docs/performance.md: how it
// ran, the table, the lines the bench printed and the plot, an SVG file
// named svg next to the page (empty: no plot).
func (r *Report) StormMarkdown(w io.Writer, svg string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	set := r.StormSettings
	kind := "`make bench`"
	switch {
	case len(r.Only) > 0 && r.Quick:
		kind = "`bin/snowgate-bench -quick -only " + strings.Join(r.Only, ",") + "` (the shortened storm)"
	case len(r.Only) > 0:
		kind = "`bin/snowgate-bench -only " + strings.Join(r.Only, ",") + "` (make bench's storm)"
	case r.Quick:
		kind = "`make bench-quick` (the shortened storm)"
	}
	p("### 7. Storm\n\n")
	p("Measured by %s on %s, %s. ", kind, r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Machine)
	p("%d new incidents, each then updated %d times by people in the instance, within %s (%d changes; the Business Rule runs twice for %.0f %% of them, "+
		"and the instance's ECC queue sends some webhooks late, out of order or twice), into one gateway whose instance allows its integration user "+
		"%d requests a minute (a rate limit rule with a one-minute window, which stands for ServiceNow's hour: the functions' retry backoff and "+
		"longest pause are compressed by the same factor, and X-RateLimit-Limit is scaled to the hour). The gateway's budget is %d requests an hour "+
		"(burst %d) and %d at once, below the quota. Write-back on: the demo engine answers every job (an in_progress note, then resolved after %s), "+
		"the writer writes the results back, and their echoes come back through the Business Rule. The reconciler runs every 2 minutes. "+
		"Every request of every function to the instance counts, from the first change to the last decision.\n\n",
		set.Records, set.Updates, set.Duration, set.Records*(set.Updates+1), set.DuplicateRate*100, set.QuotaPerMin,
		set.RatePerHour, registry.BurstFor(set.RatePerHour), set.MaxConcurrency, demoengine.DefaultDelay)
	if len(r.Storms) == 0 {
		p("Not measured (see notes).\n")
		return
	}
	p("```\n")
	for _, s := range r.Storms {
		p("%s\n", s.Line())
	}
	p("```\n\n")
	for i, s := range r.Storms {
		p("Run %d: load average %s before, %s after.\n", i+1, s.LoadBefore, s.LoadAfter)
	}
	p("\n")
	stormTable(p, r.Storms)
	if svg != "" {
		p("\n![The storm: backlog, ServiceNow requests per minute and the quota over time](%s)\n", svg)
	}
}
