package state

import (
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"
)

// Caps on the texts snowgate copies out of a record, so that no record,
// however long its description, makes a job event larger than SQS takes
// (256 KiB a message) or a ticket item larger than DynamoDB takes (400 KB;
// the item holds the mirror twice, as itself and as its prior). Each cap
// bounds the text's JSON encoding (an escaped "<" or control character
// counts six bytes), which is never shorter than its stored UTF-8. A text
// over its cap is cut at a character boundary and its full text's SHA-256
// travels with it (Mirror.DescriptionSHA256, queue.JobTicket's
// description_sha256, …), so a change past the cap still changes the
// mirror's content hash and still counts as a change.
//
// With every field at its cap a job event stays under 90 KiB.
const (
	// MaxDescription caps a record's description.
	MaxDescription = 32 << 10
	// MaxShortDescription caps a record's short description.
	MaxShortDescription = 4 << 10
	// MaxJournalText caps a comment's or work note's text in an event.
	MaxJournalText = 32 << 10
	// MaxField caps each other mirrored field (choice values, sys_ids,
	// dates, names: far shorter in any real record). They carry no hash.
	MaxField = 1 << 10
)

// Clip returns text cut so that its JSON encoding takes at most max
// bytes, and, when it was cut, the SHA-256 (hex) of the full text; text
// itself and "" when it fits.
func Clip(text string, max int) (string, string) {
	n := 0
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		n += jsonSize(r, size)
		if n > max {
			sum := sha256.Sum256([]byte(text))
			return text[:i], hex.EncodeToString(sum[:])
		}
		i += size
	}
	return text, ""
}

// jsonSize is how many bytes encoding/json writes for rune r, read from
// size bytes of a string.
func jsonSize(r rune, size int) int {
	switch {
	case r == utf8.RuneError && size == 1:
		return 6 // \ufffd
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
		return 6
	}
	return size
}

// clipped is the mirror with every field within its cap.
func (m Mirror) clipped() Mirror {
	m.Description, m.DescriptionSHA256 = Clip(m.Description, MaxDescription)
	m.ShortDescription, m.ShortDescriptionSHA256 = Clip(m.ShortDescription, MaxShortDescription)
	for _, f := range []*string{&m.Number, &m.State, &m.Priority, &m.AssignmentGroup, &m.AssignmentGroupName,
		&m.Environment, &m.ConfigurationItem, &m.Type, &m.Approval, &m.StartDate, &m.EndDate} {
		*f, _ = Clip(*f, MaxField)
	}
	return m
}
