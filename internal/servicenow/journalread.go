package servicenow

import (
	"context"
	"fmt"
	"sort"
)

// FieldSysCreatedBy is the user name that created a record (for a journal
// entry: its author).
const FieldSysCreatedBy = "sys_created_by"

// JournalEntry is one comment or work note of a record, read from
// sys_journal_field.
type JournalEntry struct {
	SysID string
	// Field is FieldComments or FieldWorkNotes.
	Field     string
	Text      string
	Author    string
	CreatedOn Time
}

// JournalEntries returns the record's comments and work notes created at
// or after since (whole seconds, as ServiceNow stamps them), oldest first,
// with the entry's sys_id breaking ties within a second. A zero since
// returns every entry.
//
// It reads sys_journal_field (element_id = the record's sys_id, element IN
// comments,work_notes), which the integration user must be allowed to read.
// The conditions are checked again on what comes back: an instance ignores
// a condition on a field it cannot read instead of failing the query.
func (c *Client) JournalEntries(ctx context.Context, sysID string, since Time) ([]JournalEntry, error) {
	encoded := FieldElementID + "=" + sysID + "^" + FieldElement + "IN" + FieldComments + "," + FieldWorkNotes
	if !since.IsZero() {
		encoded += "^" + FieldSysCreatedOn + ">=" + since.String()
	}
	encoded += "^ORDERBY" + FieldSysCreatedOn
	q := Query{
		Encoded:  encoded,
		Fields:   []string{FieldSysID, FieldElementID, FieldElement, FieldValue, FieldSysCreatedOn, FieldSysCreatedBy},
		PageSize: 100,
	}
	var out []JournalEntry
	_, err := c.Query(ctx, TableJournal, q, func(recs []Record) error {
		for _, r := range recs {
			if r[FieldElementID] != sysID || (r[FieldElement] != FieldComments && r[FieldElement] != FieldWorkNotes) {
				continue
			}
			at, err := ParseTime(r[FieldSysCreatedOn])
			if err != nil {
				return fmt.Errorf("%w: journal entry %s: sys_created_on: %w", ErrBadResponse, r.SysID(), err)
			}
			if !since.IsZero() && at.Before(since.Time) {
				continue
			}
			out = append(out, JournalEntry{
				SysID: r.SysID(), Field: r[FieldElement], Text: r[FieldValue], Author: r[FieldSysCreatedBy], CreatedOn: at,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the journal of %s: %w", sysID, err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedOn.Equal(out[j].CreatedOn) {
			return out[i].CreatedOn.Before(out[j].CreatedOn.Time)
		}
		return out[i].SysID < out[j].SysID
	})
	return out, nil
}
