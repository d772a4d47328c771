package servicenow_test

import (
	"context"
	"testing"

	"github.com/snowgate/snowgate/internal/servicenow"
)

// TestJournalEntries reads back comments and work notes written through
// the Table API, oldest first, with their authors, and only those since a
// time.
func TestJournalEntries(t *testing.T) {
	ctx := context.Background()
	_, url := newSim(t, nil)
	c := newClient(t, url, servicenow.BasicAuth(testUser, testPassword))
	inc, err := c.Insert(ctx, "incident", map[string]string{"short_description": "Disk full"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.Insert(ctx, "incident", map[string]string{"short_description": "Other"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddComment(ctx, "incident", inc.SysID(), "@2501 please look"); err != nil {
		t.Fatal(err)
	}
	if err := c.AddWorkNote(ctx, "incident", inc.SysID(), "internal note"); err != nil {
		t.Fatal(err)
	}
	if err := c.AddComment(ctx, "incident", other.SysID(), "not this record"); err != nil {
		t.Fatal(err)
	}

	got, err := c.JournalEntries(ctx, inc.SysID(), servicenow.Time{})
	if err != nil {
		t.Fatalf("JournalEntries: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d entries, want 2: %+v", len(got), got)
	}
	texts := map[string]string{}
	for _, e := range got {
		texts[e.Field] = e.Text
		if e.Author != testUser {
			t.Errorf("entry %s: author %q, want %q", e.SysID, e.Author, testUser)
		}
		if e.SysID == "" || e.CreatedOn.IsZero() {
			t.Errorf("entry without sys_id or time: %+v", e)
		}
	}
	if texts[servicenow.FieldComments] != "@2501 please look" || texts[servicenow.FieldWorkNotes] != "internal note" {
		t.Errorf("entries = %v", texts)
	}

	later := servicenow.NewTime(got[len(got)-1].CreatedOn.Add(1e9 * 3600))
	none, err := c.JournalEntries(ctx, inc.SysID(), later)
	if err != nil {
		t.Fatal(err)
	}
	if len(none) != 0 {
		t.Errorf("entries since an hour later: %+v", none)
	}
}
