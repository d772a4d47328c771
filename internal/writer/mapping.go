package writer

import (
	"strings"
	"unicode/utf8"

	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

// ServiceNow choice values the outbound mapping writes (the incident and
// change_request "state" and "close_code" choice lists).
const (
	IncidentResolved    = "6"
	ChangeReview        = "0"
	ChangeCloseSuccess  = "successful"
	fallbackCloseNotes  = "Completed by automation."
	wordJoiner          = "\u2060"
	stepComment         = "comment"
	stepWorkNote        = "work_note"
	stepResolve         = "resolve"
	stepEscalate        = "escalate"
	appliedNothing      = "nothing written"
	appliedJobCancelled = "job cancelled: not written"
)

// step is one write of a result: a journal entry (Field and Text) or a
// field update (Set).
type step struct {
	Name  string
	Field string // servicenow.FieldComments or FieldWorkNotes
	Text  string
	Set   map[string]string
	// Says is how the step reads in the ticket's record of the result.
	Says string
}

func (s step) journal() bool { return s.Field != "" }

// plan is what a result does to its ticket.
type plan struct {
	Steps []step
	// JobState is the job's state after the result ("" leaves it).
	JobState string
	// Note explains a part of the mapping that could not apply (an
	// escalation group without a sys_id).
	Note string
}

// planFor maps a result through the gateway's outbound mapping. Texts are
// neutralised (Neutralize) so no write of ours reads as a mention.
func planFor(g registry.Gateway, table string, r queue.JobResult) plan {
	tok := g.MentionToken()
	summary := Neutralize(r.Summary, tok)
	note := Neutralize(firstOf(r.WorkNote, r.Summary), tok)
	comment := Neutralize(firstOf(r.PublicComment, r.Summary), tok)

	var p plan
	addJournal := func(name, field, text, says string) {
		if strings.TrimSpace(text) != "" {
			p.Steps = append(p.Steps, step{Name: name, Field: field, Text: text, Says: says})
		}
	}
	escalate := func() bool {
		if g.FailureAction() != registry.OnFailureEscalate {
			return false
		}
		group := g.EscalationGroupRef()
		switch {
		case group == "":
			return false
		case !servicenow.ValidSysID(group):
			// A name written to a reference field is stored as given and
			// points nowhere; the gateway needs its group resolved.
			p.Note = "escalation group " + group + " has no sys_id (registered offline): not reassigned"
			return false
		}
		p.Steps = append(p.Steps, step{
			Name: stepEscalate, Set: map[string]string{servicenow.FieldAssignmentGroup: group},
			Says: "reassigned to " + firstOf(g.EscalationGroup, group),
		})
		return true
	}
	failureNote := func() {
		if g.FailureAction() != registry.OnFailureNone {
			addJournal(stepWorkNote, servicenow.FieldWorkNotes, note, "work note")
		}
	}

	switch r.Status {
	case queue.ResultInProgress:
		addJournal(stepWorkNote, servicenow.FieldWorkNotes, note, "work note")
	case queue.ResultSucceeded:
		p.JobState = state.JobSucceeded
		switch g.SuccessAction() {
		case registry.OnSuccessResolve:
			closeNotes := firstOf(summary, comment, note, fallbackCloseNotes)
			if table == registry.TableChangeRequest {
				p.Steps = append(p.Steps, step{Name: stepResolve, Says: "moved to Review", Set: map[string]string{
					servicenow.FieldState: ChangeReview, servicenow.FieldCloseCode: ChangeCloseSuccess, servicenow.FieldCloseNotes: closeNotes,
				}})
				break
			}
			addJournal(stepComment, servicenow.FieldComments, comment, "comment")
			p.Steps = append(p.Steps, step{Name: stepResolve, Says: "resolved", Set: map[string]string{
				servicenow.FieldState:      IncidentResolved,
				servicenow.FieldCloseCode:  firstOf(r.CloseCode, g.CloseCode()),
				servicenow.FieldCloseNotes: closeNotes,
			}})
		case registry.OnSuccessComment:
			addJournal(stepComment, servicenow.FieldComments, comment, "comment")
		}
	case queue.ResultFailed:
		p.JobState = state.JobFailed
		failureNote()
		if escalate() {
			p.JobState = state.JobEscalated
		}
	case queue.ResultPartial:
		p.JobState = state.JobPartial
		addJournal(stepComment, servicenow.FieldComments, comment, "comment")
		failureNote()
		if escalate() {
			p.JobState = state.JobEscalated
		}
	}
	return p
}

// Neutralize breaks every occurrence of the mention token in text (in any
// letter case) by putting a WORD JOINER (U+2060, invisible, never a line
// break) after its first character: the text reads the same, but no
// longer contains the token, so the processor never takes a note of ours
// for a mention or a follow-up.
func Neutralize(text, token string) string {
	if token == "" || text == "" {
		return text
	}
	_, first := utf8.DecodeRuneInString(token)
	var b strings.Builder
	for i := 0; i < len(text); {
		if n := prefixLenFold(text[i:], token); n > 0 {
			b.WriteString(text[i : i+first])
			b.WriteString(wordJoiner)
			b.WriteString(text[i+first : i+n])
			i += n
			continue
		}
		_, size := utf8.DecodeRuneInString(text[i:])
		b.WriteString(text[i : i+size])
		i += size
	}
	return b.String()
}

// prefixLenFold is the length in bytes of the part of s that equals
// prefix ignoring case, 0 when s does not start with it.
func prefixLenFold(s, prefix string) int {
	i := 0
	for _, pr := range prefix {
		if i >= len(s) {
			return 0
		}
		sr, size := utf8.DecodeRuneInString(s[i:])
		if !strings.EqualFold(string(sr), string(pr)) {
			return 0
		}
		i += size
	}
	return i
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
