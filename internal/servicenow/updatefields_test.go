package servicenow_test

import (
	"context"
	"testing"

	"github.com/snowgate/snowgate/internal/servicenow"
)

// TestUpdateFields: the answer to the PATCH carries the fields asked for,
// dot-walks included (the Table API's sysparm_fields on a PATCH), and the
// write is the one a plain Update makes.
func TestUpdateFields(t *testing.T) {
	const group = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa07"
	sim, url := newSim(t, map[string][]map[string]string{
		"sys_user_group": {{"sys_id": group, "name": "Automation escalations"}},
	})
	c := newClient(t, url, servicenow.BasicAuth(testUser, testPassword))
	ctx := context.Background()
	ins, err := c.Insert(ctx, "incident", map[string]string{"short_description": "Router down", "state": "2"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.UpdateFields(ctx, "incident", ins.SysID(), map[string]string{
		servicenow.FieldAssignmentGroup: group, servicenow.FieldState: "6", servicenow.FieldCloseCode: "Solution provided",
		servicenow.FieldCloseNotes: "Restarted.",
	}, servicenow.IncidentFields...)
	if err != nil {
		t.Fatalf("UpdateFields: %v", err)
	}
	if got[servicenow.FieldAssignmentGroupName] != "Automation escalations" || got[servicenow.FieldState] != "6" || got[servicenow.FieldSysModCount] != "1" {
		t.Errorf("answer = %v, want the group's name, state 6 and sys_mod_count 1", got)
	}
	if _, ok := got[servicenow.FieldCloseNotes]; ok {
		t.Errorf("answer has %s, which was not asked for", servicenow.FieldCloseNotes)
	}
	if rec, _ := sim.Record("incident", ins.SysID()); rec["close_code"] != "Solution provided" || rec["close_notes"] != "Restarted." {
		t.Errorf("stored %v, want the close code and notes", rec)
	}
}
