package servicenow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Journal fields and the table that holds their entries. A write to a
// journal field appends an entry to sys_journal_field (element_id = the
// record's sys_id, element = the field, value = the text) and bumps the
// record's sys_mod_count; the field itself reads as "" on the record.
const (
	FieldComments = "comments"
	TableJournal  = "sys_journal_field"

	FieldElementID    = "element_id"
	FieldElement      = "element"
	FieldValue        = "value"
	FieldSysCreatedOn = "sys_created_on"
)

// JournalClockSkew is how far before the first attempt WriteJournal looks
// for its entry, for the difference between this clock and the instance's.
const JournalClockSkew = 5 * time.Minute

// ErrJournalUnconfirmed: a journal write may or may not have been stored,
// and neither the answer nor sys_journal_field could tell. It is not sent
// again, since an append is not idempotent: a second try could add the
// entry twice.
var ErrJournalUnconfirmed = errors.New("journal write not confirmed")

// ErrJournalNotStored: the instance answered a journal write with the
// record unchanged and no entry is in the journal: it ignored the field,
// which is what it does with a field the integration user may not write.
var ErrJournalNotStored = errors.New("journal write not stored")

// JournalWrite is how a WriteJournal went.
type JournalWrite struct {
	// ModCount is the record's sys_mod_count in the write's answer; zero
	// when the write was confirmed from the journal instead.
	ModCount int
	// Entry is the sys_id of the sys_journal_field entry found, when the
	// write was confirmed from the journal.
	Entry string
	// Attempts is how many PATCH requests were sent.
	Attempts int
}

// AddWorkNote adds a work note to a record, once: WriteJournal with the
// record's version read first.
func (c *Client) AddWorkNote(ctx context.Context, table, sysID, note string) error {
	_, err := c.WriteJournal(ctx, table, sysID, FieldWorkNotes, note, -1)
	return err
}

// AddComment adds a public comment (additional comments) to a record, once.
func (c *Client) AddComment(ctx context.Context, table, sysID, text string) error {
	_, err := c.WriteJournal(ctx, table, sysID, FieldComments, text, -1)
	return err
}

// WriteJournal appends text to a record's journal field (FieldWorkNotes or
// FieldComments) with PATCH /api/now/table/{table}/{sys_id}, and makes
// sure it is stored once.
//
// knownModCount is the record's sys_mod_count as the caller last read it;
// when negative, the record is read first. The write is done when its
// answer is JSON and shows a higher sys_mod_count. Any other outcome that
// may have stored the entry (a 2xx without the bump, no body, an HTML page
// or an error envelope, a 5xx, a lost connection) is settled by looking in
// sys_journal_field for an entry of the field on the record, created since
// shortly before the first attempt, with the same text; only when there is
// none is the PATCH sent again (within the client's attempts). When the
// journal cannot be read, the error matches ErrJournalUnconfirmed and
// nothing is sent again. A 4xx is returned as is: the write was refused.
func (c *Client) WriteJournal(ctx context.Context, table, sysID, field, text string, knownModCount int) (JournalWrite, error) {
	var res JournalWrite
	fail := func(err error) (JournalWrite, error) {
		return res, fmt.Errorf("write %s to %s %s: %w", field, table, sysID, err)
	}
	if field != FieldWorkNotes && field != FieldComments {
		return fail(errors.New("not a journal field"))
	}
	if strings.TrimSpace(text) == "" {
		return fail(errors.New("empty text"))
	}
	u, err := c.recordURL(table, sysID, []string{FieldSysID, FieldSysModCount})
	if err != nil {
		return fail(err)
	}
	since := c.now().Add(-JournalClockSkew)
	if knownModCount < 0 {
		rec, err := c.Get(ctx, table, sysID, FieldSysID, FieldSysModCount)
		if err != nil {
			return fail(err)
		}
		if knownModCount, err = rec.SysModCount(); err != nil {
			return fail(err)
		}
	}
	body, err := json.Marshal(map[string]string{field: text})
	if err != nil {
		return fail(err)
	}
	for attempt := 1; ; attempt++ {
		res.Attempts++
		ans, err := c.do(ctx, request{
			method: http.MethodPatch, url: u, body: body, contentType: "application/json",
			authorize: true, table: table, access: "write",
		}, nil)
		unchanged, answered := false, 0
		if err == nil {
			n, read := modCount(ans.body)
			if read && n > knownModCount {
				res.ModCount = n
				return res, nil
			}
			unchanged, answered = read, n
			err = fmt.Errorf("%w: the answer does not show sys_mod_count above %d", ErrBadResponse, knownModCount)
		} else if !mayHaveStored(err) {
			return fail(err)
		}
		entry, found, jerr := c.findJournal(ctx, table, sysID, field, text, since)
		switch {
		case jerr != nil:
			return fail(fmt.Errorf("%w: %w; looking for the entry: %w", ErrJournalUnconfirmed, err, jerr))
		case found:
			res.Entry = entry
			return res, nil
		case unchanged:
			return fail(fmt.Errorf("%w: the instance answered with the record unchanged (sys_mod_count %d) and no entry in %s: "+
				"the integration user may lack the write right on %s", ErrJournalNotStored, answered, TableJournal, field))
		}
		// Not stored: sending it again cannot add it twice.
		if attempt >= c.maxAttempts {
			return fail(err)
		}
		wait := c.backoff(attempt)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return fail(err)
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return fail(fmt.Errorf("%w (waiting to retry after: %w)", serr, err))
		}
	}
}

// modCount reads the sys_mod_count of a write's answer; false when the
// answer is not a record that has one.
func modCount(body []byte) (int, bool) {
	rec, err := decodeRecord(body)
	if err != nil {
		return 0, false
	}
	n, err := rec.SysModCount()
	return n, err == nil
}

// mayHaveStored reports whether a failed write may have been applied: the
// request reached the instance and the answer does not say it was refused.
// A 4xx, a 503 (429 and 503 say the request was not run; the client has
// retried them already) and a failure to get a token or to connect were
// not applied.
func mayHaveStored(err error) bool {
	var tk *tokenError
	if errors.As(err, &tk) {
		return false
	}
	var se *Error
	if errors.As(err, &se) {
		return se.Status >= 500 && se.Status != http.StatusServiceUnavailable
	}
	var ae *AnswerError
	if errors.As(err, &ae) {
		return true
	}
	var te *transportError
	if errors.As(err, &te) {
		return !IsCertificateError(err)
	}
	// A deadline or cancellation while the request was in flight.
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// errFound stops a journal query at the entry it looks for.
var errFound = errors.New("entry found")

// findJournal looks for an entry of field on the record with text as its
// value, created at or after since. The value is compared here rather than
// in the encoded query: a ^ in the text would split the query, and a long
// text may not compare equal in the database.
func (c *Client) findJournal(ctx context.Context, table, sysID, field, text string, since time.Time) (string, bool, error) {
	want := normalizeJournal(text)
	var entry string
	q := Query{
		Encoded: FieldElementID + "=" + sysID + "^" + FieldElement + "=" + field +
			"^" + FieldSysCreatedOn + ">=" + NewTime(since).String() +
			"^ORDERBYDESC" + FieldSysCreatedOn,
		Fields:   []string{FieldSysID, FieldElementID, FieldElement, FieldValue, FieldSysCreatedOn},
		PageSize: 100,
	}
	_, err := c.Query(ctx, TableJournal, q, func(recs []Record) error {
		for _, r := range recs {
			// The query's conditions are checked again: an instance ignores
			// a condition it cannot read instead of failing the query.
			if r[FieldElementID] == sysID && r[FieldElement] == field && normalizeJournal(r[FieldValue]) == want {
				entry = r.SysID()
				return errFound
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return entry, true, nil
	case err != nil:
		return "", false, err
	}
	return "", false, nil
}

// normalizeJournal makes a stored entry comparable with the text written:
// line ends and surrounding space may differ.
func normalizeJournal(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
}

// hasJournalField reports whether a write sets a journal field.
func hasJournalField(fields map[string]string) bool {
	_, notes := fields[FieldWorkNotes]
	_, comments := fields[FieldComments]
	return notes || comments
}
