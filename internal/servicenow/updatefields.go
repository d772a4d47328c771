package servicenow

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
)

// Incident and change request fields the writer sets.
const (
	FieldCloseCode  = "close_code"
	FieldCloseNotes = "close_notes"
)

// UpdateFields is Update answering with the given fields only
// (sysparm_fields on the PATCH, which the Table API honours as on a GET),
// so the answer can carry what a plain Update's does not: dot-walked
// values such as "assignment_group.name". The same rules as Update apply:
// the answer must be the record as JSON, and a journal field makes the
// write an append that is not retried after a failure that may have
// applied it.
func (c *Client) UpdateFields(ctx context.Context, table, sysID string, set map[string]string, fields ...string) (Record, error) {
	u, err := c.recordURL(table, sysID, fields)
	if err != nil {
		return nil, fmt.Errorf("update %s %s: %w", table, sysID, err)
	}
	res, err := c.write(ctx, http.MethodPatch, table, u, set)
	if err != nil {
		return nil, fmt.Errorf("update %s %s: %w", table, sysID, err)
	}
	if len(bytes.TrimSpace(res.body)) == 0 {
		return nil, fmt.Errorf("update %s %s: answered %d without the record, so the write is not confirmed: %w", table, sysID, res.status, ErrBadResponse)
	}
	rec, err := decodeRecord(res.body)
	if err != nil {
		return nil, fmt.Errorf("update %s %s: %w", table, sysID, err)
	}
	return rec, nil
}
