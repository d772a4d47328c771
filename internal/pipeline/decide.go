package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/state"
)

// Change request states and approval the pipeline acts on.
const (
	changeStateScheduled = "-2"
	changeStateImplement = "-1"
	approvalApproved     = "approved"
)

// scope applies the gateway's filters and the change window. It returns
// the status and reason of a record the pipeline does not dispatch, or ""
// for one it does; due is set for deferred.
func scope(g registry.Gateway, table string, v state.Version, now time.Time) (status, reason string, due time.Time) {
	m := v.Mirror
	switch {
	case !g.Active:
		return state.StatusOutOfScope, "gateway inactive", time.Time{}
	case closed(table, m.State) != "":
		return state.StatusOutOfScope, closed(table, m.State), time.Time{}
	case !m.Active:
		return state.StatusOutOfScope, "record inactive", time.Time{}
	}
	if !inGroupFilter(g, m) {
		return state.StatusOutOfScope, fmt.Sprintf("assignment group %q not in the gateway's filter", m.AssignmentGroupName), time.Time{}
	}
	// Exactly, as the Business Rule condition compares it.
	if envs := g.Environments(); len(envs) > 0 && !slices.Contains(envs, m.Environment) {
		return state.StatusOutOfScope, fmt.Sprintf("environment %q not in the gateway's filter", m.Environment), time.Time{}
	}
	if table != registry.TableChangeRequest {
		return "", "", time.Time{}
	}
	switch {
	case m.Approval != approvalApproved:
		return state.StatusOutOfScope, fmt.Sprintf("change not approved (approval %q)", m.Approval), time.Time{}
	case m.State != changeStateScheduled && m.State != changeStateImplement:
		return state.StatusOutOfScope, fmt.Sprintf("change state %s is neither Scheduled (-2) nor Implement (-1)", m.State), time.Time{}
	case !v.End.IsZero() && now.After(v.End):
		return state.StatusExpired, "change window ended at " + m.EndDate + " UTC", time.Time{}
	case !v.Start.IsZero() && now.Before(v.Start):
		return state.StatusDeferred, "change window opens at " + m.StartDate + " UTC", v.Start
	}
	return "", "", time.Time{}
}

// inGroupFilter matches the record's assignment group as the Business
// Rule condition does: by sys_id when the gateway's filter was resolved at
// registration, else by name, exactly (conditions compare strings
// case-sensitively, so "network" does not select the group "Network").
func inGroupFilter(g registry.Gateway, m state.Mirror) bool {
	if g.GroupsByID() {
		return slices.Contains(g.AssignmentGroupIDs, m.AssignmentGroup)
	}
	groups := g.AssignmentGroups()
	return len(groups) == 0 || slices.Contains(groups, m.AssignmentGroupName)
}

// dedupWindow is the gateway's dedup window; zero when disabled. A gateway
// stored without one (0) gets the default.
func dedupWindow(g registry.Gateway) time.Duration {
	switch m := g.DedupWindowMinutes; {
	case m < 0:
		return 0
	case m == 0:
		return registry.DefaultDedupWindowMinutes * time.Minute
	default:
		return time.Duration(m) * time.Minute
	}
}

// fingerprint identifies "the same problem": the short description with
// case, punctuation and spacing normalised, plus the configuration item.
// It is "" when there is no description to compare.
func fingerprint(m state.Mirror) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToLower(m.ShortDescription) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
			continue
		}
		space = true
	}
	if b.Len() == 0 {
		return ""
	}
	sum := sha256.Sum256([]byte(b.String() + "\x00" + m.ConfigurationItem))
	return hex.EncodeToString(sum[:16])
}

// jobNamespace scopes job ids (UUID v5).
var jobNamespace = uuid.MustParse("6f1d7b1e-8c1a-4f4e-9a57-2b0f3c5d9e10")
