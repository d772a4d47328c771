package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

// plan is the lifecycle decision on a claimed version, before anything is
// sent: which events the version brings to the ticket's job.
type plan struct {
	// create: a job.created (a new episode) is wanted, unless dedup finds
	// a primary first (dedup).
	create  bool
	reason  string
	message *queue.JournalMessage
	// duplicateOf is the primary's number, for an unlinked ticket.
	duplicateOf string
	// dedup: the fingerprint claim decides whether the job is created.
	dedup bool
	// changed names the mirrored fields that changed (job.updated).
	changed []string
	// cancel is why the open job is cancelled.
	cancel string
	// followUps are the entries that become job.follow_up events.
	followUps []servicenow.JournalEntry
}

// closed says in words whether the record's state ends it: an incident
// Resolved (which keeps it active in ServiceNow, so active alone does not
// tell), Closed or Canceled; a change request Closed or Canceled.
func closed(table, st string) string {
	if table == registry.TableChangeRequest {
		switch st {
		case "3":
			return "change request closed (state 3)"
		case "4":
			return "change request canceled (state 4)"
		}
		return ""
	}
	switch st {
	case "6":
		return "incident resolved (state 6)"
	case "7":
		return "incident closed (state 7)"
	case "8":
		return "incident canceled (state 8)"
	}
	return ""
}

// mirroredFields pairs each mirrored field's ServiceNow name with its value.
func mirroredFields(m state.Mirror) [][2]string {
	return [][2]string{
		{servicenow.FieldState, m.State},
		{servicenow.FieldPriority, m.Priority},
		// A text cut to its cap differs by its full text's hash too.
		{servicenow.FieldShortDescription, m.ShortDescription + "\x00" + m.ShortDescriptionSHA256},
		{servicenow.FieldDescription, m.Description + "\x00" + m.DescriptionSHA256},
		{servicenow.FieldAssignmentGroup, m.AssignmentGroup},
		{servicenow.FieldEnvironment, m.Environment},
		{servicenow.FieldConfigurationItem, m.ConfigurationItem},
		{servicenow.FieldActive, fmt.Sprint(m.Active)},
		{servicenow.FieldType, m.Type},
		{servicenow.FieldApproval, m.Approval},
		{servicenow.FieldStartDate, m.StartDate},
		{servicenow.FieldEndDate, m.EndDate},
	}
}

// changedFields names, with ServiceNow's names, the mirrored fields that
// differ between two mirrors.
func changedFields(before, after state.Mirror) []string {
	a, b := mirroredFields(before), mirroredFields(after)
	var out []string
	for i := range a {
		if a[i][1] != b[i][1] {
			out = append(out, a[i][0])
		}
	}
	return out
}

// reentered reports whether a ticket whose job ended has been out of the
// gateway's scope since (resolved, closed, unapproved, outside its
// filters or its window), as the last decision or the last version
// recorded (by the writer, say) shows: its next in-scope version is a new
// episode.
func reentered(g registry.Gateway, table string, prev state.Ticket) bool {
	switch prev.Status {
	case state.StatusOutOfScope, state.StatusExpired, state.StatusDeferred:
		return true
	}
	// Without the window: only what a person or the writer changed.
	st, _, _ := scope(g, table, state.Version{Mirror: prev.Mirror}, time.Time{})
	return st != ""
}

// createReason says why a ticket in scope without an open job gets one in
// automatic mode.
func createReason(table string, prev state.Ticket) string {
	switch {
	case prev.Status == state.StatusDeferred:
		return queue.ReasonWindowOpened
	case prev.Job == nil:
		return queue.ReasonNewRecord
	case table == registry.TableChangeRequest:
		return queue.ReasonReapproved
	default:
		return queue.ReasonReopened
	}
}

// mentions keeps the entries that mention the gateway's token, leaving out
// those of its own integration user (our notes never loop).
func mentions(g registry.Gateway, entries []servicenow.JournalEntry) []servicenow.JournalEntry {
	var out []servicenow.JournalEntry
	for _, e := range entries {
		if g.Username != "" && strings.EqualFold(e.Author, g.Username) {
			continue
		}
		if hasToken(e.Text, g.MentionToken()) {
			out = append(out, e)
		}
	}
	return out
}

// hasToken reports whether text holds token as a whole token, ignoring
// case: "@2501," and "(@2501" mention @2501, "@25012" and "x@2501" do not.
func hasToken(text, token string) bool {
	_, ok := tokenEnd(strings.ToLower(text), strings.ToLower(strings.TrimSpace(token)))
	return ok
}

// tokenEnd returns where, in lt, the first whole occurrence of tok ends;
// both are lower-cased.
func tokenEnd(lt, tok string) (int, bool) {
	if tok == "" {
		return 0, false
	}
	for i := 0; ; {
		j := strings.Index(lt[i:], tok)
		if j < 0 {
			return 0, false
		}
		start, end := i+j, i+j+len(tok)
		before, _ := utf8.DecodeLastRuneInString(lt[:start])
		after, _ := utf8.DecodeRuneInString(lt[end:])
		if (start == 0 || !wordRune(before)) && (end == len(lt) || !wordRune(after)) {
			return end, true
		}
		i = start + 1
	}
}

func wordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '@' }

// unlinks reports whether an entry asks to unlink its ticket: the mention
// token followed by registry.UnlinkCommand ("@2501 unlink-ticket"), in any
// case.
func unlinks(text, token string) bool {
	lt, tok := strings.ToLower(text), strings.ToLower(strings.TrimSpace(token))
	for rest := 0; rest < len(lt); {
		end, ok := tokenEnd(lt[rest:], tok)
		if !ok {
			return false
		}
		rest += end
		tail := strings.TrimLeftFunc(lt[rest:], unicode.IsSpace)
		if cmd, ok := strings.CutPrefix(tail, registry.UnlinkCommand); ok {
			if r, _ := utf8.DecodeRuneInString(cmd); cmd == "" || !(wordRune(r) || r == '-') {
				return true
			}
		}
	}
	return false
}

// message is a journal entry as the engine reads it, its text cut to
// state.MaxJournalText (and its author to state.MaxField).
func message(e servicenow.JournalEntry) *queue.JournalMessage {
	text, sum := state.Clip(e.Text, state.MaxJournalText)
	author, _ := state.Clip(e.Author, state.MaxField)
	return &queue.JournalMessage{Field: e.Field, Text: text, TextSHA256: sum, Author: author, EnteredAt: e.CreatedOn.UTC(), EntryID: e.SysID}
}

// journalSince splits entries read since the ticket's last seen second
// into the new ones and the new seen position. Entries of the seen second
// that the ticket has seen are dropped.
func journalSince(prev state.Ticket, entries []servicenow.JournalEntry) (news []servicenow.JournalEntry, seenAt string, seenIDs []string) {
	seenAt, seenIDs = prev.JournalSeenAt, slices.Clone(prev.JournalSeenIDs)
	for _, e := range entries {
		at := e.CreatedOn.String()
		if at == prev.JournalSeenAt && slices.Contains(prev.JournalSeenIDs, e.SysID) {
			continue
		}
		news = append(news, e)
		switch {
		case at > seenAt: // the layout sorts as time does
			seenAt, seenIDs = at, []string{e.SysID}
		case at == seenAt && !slices.Contains(seenIDs, e.SysID):
			seenIDs = append(seenIDs, e.SysID)
		}
	}
	return news, seenAt, seenIDs
}

// jobIDFor is the id of a ticket's job in an episode: the same for every
// attempt at creating it, so a re-send after a crash carries the same id.
func jobIDFor(k state.Key, episode int) string {
	return uuid.NewSHA1(jobNamespace, []byte(strings.Join([]string{k.GatewayID, k.Table, k.SysID, "episode", fmt.Sprint(episode)}, "\n"))).String()
}
