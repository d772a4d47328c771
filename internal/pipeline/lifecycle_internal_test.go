package pipeline

import (
	"slices"
	"testing"

	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

func TestMentions(t *testing.T) {
	tests := []struct {
		text         string
		token        string
		want, unlink bool
	}{
		{text: "@2501 please look", token: "@2501", want: true},
		{text: "Thanks @2501.", token: "@2501", want: true},
		{text: "(@2501) see above", token: "@2501", want: true},
		{text: "hey @2501\nmore", token: "@2501", want: true},
		{text: "ÄÖ @2501", token: "@2501", want: true},
		{text: "ticket @25012", token: "@2501", want: false},
		{text: "mail x@2501", token: "@2501", want: false},
		{text: "@@2501", token: "@2501", want: false},
		{text: "no mention", token: "@2501", want: false},
		{text: "@BOT help", token: "@bot", want: true},
		{text: "@2501 unlink-ticket", token: "@2501", want: true, unlink: true},
		{text: "@2501   UNLINK-TICKET please", token: "@2501", want: true, unlink: true},
		{text: "@2501 unlink-ticket.", token: "@2501", want: true, unlink: true},
		{text: "@2501 unlink-tickets", token: "@2501", want: true},
		{text: "@2501 unlink-ticket-now", token: "@2501", want: true},
		{text: "unlink-ticket @2501", token: "@2501", want: true},
		{text: "x@2501 unlink-ticket, then @2501 unlink-ticket", token: "@2501", want: true, unlink: true},
		{text: "İİİ @2501 unlink-ticket", token: "@2501", want: true, unlink: true},
	}
	for _, tt := range tests {
		if got := hasToken(tt.text, tt.token); got != tt.want {
			t.Errorf("hasToken(%q, %q) = %v, want %v", tt.text, tt.token, got, tt.want)
		}
		if got := unlinks(tt.text, tt.token); got != tt.unlink {
			t.Errorf("unlinks(%q, %q) = %v, want %v", tt.text, tt.token, got, tt.unlink)
		}
	}
}

func TestJournalSince(t *testing.T) {
	at := func(s string) servicenow.Time {
		tm, err := servicenow.ParseTime(s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	prev := state.Ticket{JournalSeenAt: "2026-03-01 10:00:00", JournalSeenIDs: []string{"a"}}
	tests := []struct {
		name     string
		entries  []servicenow.JournalEntry
		wantNews []string
		wantAt   string
		wantIDs  []string
	}{
		{name: "seen entry of the second dropped, later second moves on",
			entries:  []servicenow.JournalEntry{{SysID: "a", CreatedOn: at("2026-03-01 10:00:00")}, {SysID: "b", CreatedOn: at("2026-03-01 10:00:00")}, {SysID: "c", CreatedOn: at("2026-03-01 10:00:01")}},
			wantNews: []string{"b", "c"}, wantAt: "2026-03-01 10:00:01", wantIDs: []string{"c"}},
		{name: "same second adds to the seen ids",
			entries:  []servicenow.JournalEntry{{SysID: "a", CreatedOn: at("2026-03-01 10:00:00")}, {SysID: "b", CreatedOn: at("2026-03-01 10:00:00")}},
			wantNews: []string{"b"}, wantAt: "2026-03-01 10:00:00", wantIDs: []string{"a", "b"}},
		{name: "nothing new", entries: []servicenow.JournalEntry{{SysID: "a", CreatedOn: at("2026-03-01 10:00:00")}},
			wantAt: "2026-03-01 10:00:00", wantIDs: []string{"a"}},
	}
	for _, tt := range tests {
		news, gotAt, gotIDs := journalSince(prev, tt.entries)
		var ids []string
		for _, e := range news {
			ids = append(ids, e.SysID)
		}
		if !slices.Equal(ids, tt.wantNews) || gotAt != tt.wantAt || !slices.Equal(gotIDs, tt.wantIDs) {
			t.Errorf("%s: journalSince = %v, %q, %v; want %v, %q, %v", tt.name, ids, gotAt, gotIDs, tt.wantNews, tt.wantAt, tt.wantIDs)
		}
	}
}
