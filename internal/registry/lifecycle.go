package registry

// Job modes of a gateway.
const (
	// ModeAutomatic: every in-scope ticket gets a job.
	ModeAutomatic = "automatic"
	// ModeSemiAutomatic: a ticket gets a job only when a comment or work
	// note mentions the gateway's mention token.
	ModeSemiAutomatic = "semi-automatic"
)

// Modes lists the job modes.
var Modes = []string{ModeAutomatic, ModeSemiAutomatic}

// DefaultMention is the mention token of a gateway that sets none.
const DefaultMention = "@2501"

// UnlinkCommand, after the mention token ("@2501 unlink-ticket"), gives a
// deduplicated ticket a job of its own.
const UnlinkCommand = "unlink-ticket"

// Outbound mapping: what the writer does with a succeeded result…
const (
	// OnSuccessResolve: an incident is Resolved (6) with the close code
	// and the summary as close notes; a change request moves to Review (0)
	// with close code "successful".
	OnSuccessResolve = "resolve"
	// OnSuccessComment: the summary as a public comment, the ticket left open.
	OnSuccessComment = "comment"
	OnSuccessNone    = "none"
)

// …and with a failed or partial one.
const (
	// OnFailureEscalate: a work note with the details, and the ticket
	// reassigned to the gateway's escalation group when it has one.
	OnFailureEscalate = "escalate"
	// OnFailureNote: the work note only.
	OnFailureNote = "note"
	OnFailureNone = "none"
)

// SuccessActions and FailureActions list the outbound mapping's choices.
var (
	SuccessActions = []string{OnSuccessResolve, OnSuccessComment, OnSuccessNone}
	FailureActions = []string{OnFailureEscalate, OnFailureNote, OnFailureNone}
)

// DefaultResolveCloseCode is the incident close code of a gateway that
// sets none; change requests always close "successful".
const DefaultResolveCloseCode = "Solution provided"

// JobMode is the gateway's mode, automatic when unset.
func (g Gateway) JobMode() string {
	if g.Mode == "" {
		return ModeAutomatic
	}
	return g.Mode
}

// MentionToken is the gateway's mention token, DefaultMention when unset.
func (g Gateway) MentionToken() string {
	if g.Mention == "" {
		return DefaultMention
	}
	return g.Mention
}

// SuccessAction is what a succeeded result does, OnSuccessResolve when unset.
func (g Gateway) SuccessAction() string {
	if g.OnSuccess == "" {
		return OnSuccessResolve
	}
	return g.OnSuccess
}

// FailureAction is what a failed or partial result does,
// OnFailureEscalate when unset.
func (g Gateway) FailureAction() string {
	if g.OnFailure == "" {
		return OnFailureEscalate
	}
	return g.OnFailure
}

// CloseCode is the incident close code a succeeded result resolves with.
func (g Gateway) CloseCode() string {
	if g.ResolveCloseCode == "" {
		return DefaultResolveCloseCode
	}
	return g.ResolveCloseCode
}

// DedupNote reports whether a deduplicated incident gets a work note
// naming its primary.
func (g Gateway) DedupNote() bool { return !g.DedupNoteOff }
