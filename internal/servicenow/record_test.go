package servicenow_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/servicenow"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    servicenow.Time
		wantErr bool
	}{
		{name: "date-time", in: "2026-03-14 15:09:26", want: servicenow.Time{Time: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)}},
		{name: "empty is zero", in: ""},
		{name: "RFC 3339 refused", in: "2026-03-14T15:09:26Z", wantErr: true},
		{name: "date only refused", in: "2026-03-14", wantErr: true},
		{name: "display value refused", in: "03/14/2026 08:09:26 AM", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := servicenow.ParseTime(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseTime(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseTime(%q) mismatch (-want +got):\n%s", tc.in, diff)
			}
			if err == nil && got.String() != tc.in {
				t.Errorf("ParseTime(%q).String() = %q", tc.in, got.String())
			}
		})
	}
}

func TestTimeFormats(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	tm := servicenow.NewTime(time.Date(2026, 3, 14, 16, 9, 26, 999, paris))
	if got, want := tm.String(), "2026-03-14 15:09:26"; got != want {
		t.Errorf("NewTime(16:09:26 CET).String() = %q, want %q", got, want)
	}

	type doc struct {
		At   servicenow.Time  `json:"at"`
		Zero servicenow.Time  `json:"zero"`
		Ptr  *servicenow.Time `json:"ptr,omitempty"`
	}
	b, err := json.Marshal(doc{At: tm})
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if got, want := string(b), `{"at":"2026-03-14 15:09:26","zero":""}`; got != want {
		t.Errorf("Marshal = %s, want %s", got, want)
	}
	var back doc
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if diff := cmp.Diff(doc{At: tm}, back); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"at":"2026-03-14T15:09:26Z"}`), &back); err == nil {
		t.Error("Unmarshal of an RFC 3339 time = nil error, want one")
	}
	if err := json.Unmarshal([]byte(`{"at":null}`), &back); err != nil || !back.At.IsZero() {
		t.Errorf("Unmarshal(null) = %v, %v; want zero, nil", back.At, err)
	}
}

func TestRecordHelpers(t *testing.T) {
	r := servicenow.Record{"sys_id": sysID1, "sys_mod_count": "12", "sys_updated_on": "2026-03-14 15:09:26"}
	if got := r.SysID(); got != sysID1 {
		t.Errorf("SysID() = %q", got)
	}
	if n, err := r.SysModCount(); n != 12 || err != nil {
		t.Errorf("SysModCount() = %d, %v; want 12, nil", n, err)
	}
	if at, err := r.SysUpdatedOn(); at.String() != "2026-03-14 15:09:26" || err != nil {
		t.Errorf("SysUpdatedOn() = %v, %v", at, err)
	}
	for _, bad := range []servicenow.Record{{}, {"sys_mod_count": "x", "sys_updated_on": "yesterday"}, {"sys_mod_count": "-1", "sys_updated_on": ""}} {
		if _, err := bad.SysModCount(); !errors.Is(err, servicenow.ErrInvalidRecord) {
			t.Errorf("%v.SysModCount() error = %v, want ErrInvalidRecord", bad, err)
		}
		if _, err := bad.SysUpdatedOn(); !errors.Is(err, servicenow.ErrInvalidRecord) {
			t.Errorf("%v.SysUpdatedOn() error = %v, want ErrInvalidRecord", bad, err)
		}
	}
}

func incidentRecord() servicenow.Record {
	return servicenow.Record{
		"sys_id": sysID1, "number": "INC0010001", "state": "2", "priority": "1",
		"short_description": "Disk full", "description": "on web-01",
		"assignment_group": "287ebd7da9fe198100f92cc8d1d2154e", "assignment_group.name": "Network",
		"u_environment": "production", "cmdb_ci": "b0c4030ac0a800090166a5e7a2fa2ee4",
		"active": "true", "sys_mod_count": "5", "sys_updated_on": "2026-03-14 15:09:26",
	}
}

func TestIncidentFrom(t *testing.T) {
	updated := servicenow.Time{Time: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)}
	tests := []struct {
		name    string
		edit    func(servicenow.Record)
		want    servicenow.Incident
		wantErr bool
	}{
		{
			name: "full record",
			edit: func(servicenow.Record) {},
			want: servicenow.Incident{
				SysID: sysID1, Number: "INC0010001", State: "2", Priority: "1",
				ShortDescription: "Disk full", Description: "on web-01",
				AssignmentGroup: "287ebd7da9fe198100f92cc8d1d2154e", AssignmentGroupName: "Network",
				Environment: "production", ConfigurationItem: "b0c4030ac0a800090166a5e7a2fa2ee4",
				Active: true, SysModCount: 5, SysUpdatedOn: updated,
			},
		},
		{
			name: "inactive, empty text fields",
			edit: func(r servicenow.Record) {
				r["active"] = "false"
				for _, f := range []string{"description", "assignment_group", "assignment_group.name", "u_environment", "cmdb_ci"} {
					r[f] = ""
				}
			},
			want: servicenow.Incident{
				SysID: sysID1, Number: "INC0010001", State: "2", Priority: "1", ShortDescription: "Disk full",
				SysModCount: 5, SysUpdatedOn: updated,
			},
		},
		{name: "no sys_id", edit: func(r servicenow.Record) { delete(r, "sys_id") }, wantErr: true},
		{name: "no active", edit: func(r servicenow.Record) { delete(r, "active") }, wantErr: true},
		{name: "active as display value", edit: func(r servicenow.Record) { r["active"] = "Yes" }, wantErr: true},
		{name: "no sys_mod_count", edit: func(r servicenow.Record) { delete(r, "sys_mod_count") }, wantErr: true},
		{name: "bad sys_updated_on", edit: func(r servicenow.Record) { r["sys_updated_on"] = "03/14/2026" }, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := incidentRecord()
			tc.edit(r)
			got, err := servicenow.IncidentFrom(r)
			if tc.wantErr {
				if !errors.Is(err, servicenow.ErrInvalidRecord) {
					t.Fatalf("IncidentFrom() error = %v, want ErrInvalidRecord", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("IncidentFrom: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("IncidentFrom() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChangeRequestFrom(t *testing.T) {
	r := incidentRecord()
	r["state"], r["type"], r["approval"] = "-2", "normal", "approved"
	r["start_date"], r["end_date"] = "2026-03-15 08:00:00", ""
	got, err := servicenow.ChangeRequestFrom(r)
	if err != nil {
		t.Fatalf("ChangeRequestFrom: %v", err)
	}
	want := servicenow.ChangeRequest{
		SysID: sysID1, Number: "INC0010001", State: "-2", Priority: "1",
		ShortDescription: "Disk full", Description: "on web-01",
		AssignmentGroup: "287ebd7da9fe198100f92cc8d1d2154e", AssignmentGroupName: "Network",
		Environment: "production", ConfigurationItem: "b0c4030ac0a800090166a5e7a2fa2ee4",
		Active: true, SysModCount: 5,
		SysUpdatedOn: servicenow.Time{Time: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)},
		Type:         "normal", Approval: "approved",
		StartDate: servicenow.Time{Time: time.Date(2026, 3, 15, 8, 0, 0, 0, time.UTC)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ChangeRequestFrom() mismatch (-want +got):\n%s", diff)
	}

	r["end_date"] = "tomorrow"
	if _, err := servicenow.ChangeRequestFrom(r); !errors.Is(err, servicenow.ErrInvalidRecord) {
		t.Errorf("ChangeRequestFrom(bad end_date) error = %v, want ErrInvalidRecord", err)
	}
}

func TestFieldLists(t *testing.T) {
	// ChangeRequestFields extends IncidentFields without sharing its
	// backing array, so appending to one never changes the other.
	n := len(servicenow.IncidentFields)
	if diff := cmp.Diff(servicenow.IncidentFields, servicenow.ChangeRequestFields[:n]); diff != "" {
		t.Errorf("ChangeRequestFields do not start with IncidentFields:\n%s", diff)
	}
	if diff := cmp.Diff([]string{"type", "approval", "start_date", "end_date"}, servicenow.ChangeRequestFields[n:]); diff != "" {
		t.Errorf("change request fields mismatch (-want +got):\n%s", diff)
	}
}
