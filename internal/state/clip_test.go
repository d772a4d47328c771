package state_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/snowgate/snowgate/internal/servicenow"
	"github.com/snowgate/snowgate/internal/state"
)

func TestClip(t *testing.T) {
	long := strings.Repeat("é", 40) // 2 bytes a character
	tests := []struct {
		name     string
		text     string
		max      int
		wantText string
		wantHash bool
	}{
		{name: "fits", text: "router down", max: 11, wantText: "router down"},
		{name: "empty", text: "", max: 0, wantText: ""},
		{name: "cut at a character boundary", text: long, max: 41, wantText: strings.Repeat("é", 20), wantHash: true},
		{name: "escapes count", text: "<<<<", max: 12, wantText: "<<", wantHash: true},
		{name: "control characters count six", text: "a\x01b", max: 6, wantText: "a", wantHash: true},
		{name: "invalid UTF-8 counts as its replacement", text: "a\xffb", max: 3, wantText: "a", wantHash: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, sum := state.Clip(tt.text, tt.max)
			if got != tt.wantText || (sum != "") != tt.wantHash {
				t.Fatalf("Clip(%q, %d) = %q, %q; want %q, hash %v", tt.text, tt.max, got, sum, tt.wantText, tt.wantHash)
			}
			if enc, _ := json.Marshal(got); len(enc)-2 > tt.max {
				t.Errorf("encoded %d bytes, over the cap %d", len(enc)-2, tt.max)
			}
			if full := sha256.Sum256([]byte(tt.text)); tt.wantHash && sum != hex.EncodeToString(full[:]) {
				t.Errorf("hash %q is not the full text's", sum)
			}
		})
	}
}

// TestVersionOfClipsLongTexts: a record with a description far over its
// cap mirrors within it, with the full text's hash, and an edit past the
// cap still changes the content hash. A record within its caps mirrors as
// it always did, so existing tickets' hashes do not move.
func TestVersionOfClipsLongTexts(t *testing.T) {
	rec := func(desc, short string) servicenow.Record {
		return servicenow.Record{"sys_id": "0123456789abcdef0123456789abcdef", "number": "INC0010001", "sys_mod_count": "3",
			"sys_updated_on": "2026-01-01 10:00:00", "state": "2", "active": "true",
			"short_description": short, "description": desc}
	}
	big := strings.Repeat("x", 1<<20)
	a, err := state.VersionOf("incident", rec(big+"a", strings.Repeat("s", 10<<10)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := state.VersionOf("incident", rec(big+"b", strings.Repeat("s", 10<<10)))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Mirror.Description) != state.MaxDescription || len(a.Mirror.ShortDescription) != state.MaxShortDescription {
		t.Errorf("description %d bytes, short %d; want %d and %d", len(a.Mirror.Description), len(a.Mirror.ShortDescription), state.MaxDescription, state.MaxShortDescription)
	}
	if a.Mirror.DescriptionSHA256 == "" || a.Mirror.ShortDescriptionSHA256 == "" {
		t.Errorf("hashes %q, %q; want both set", a.Mirror.DescriptionSHA256, a.Mirror.ShortDescriptionSHA256)
	}
	if a.Mirror.Description != b.Mirror.Description || a.Mirror.Hash() == b.Mirror.Hash() {
		t.Errorf("an edit past the cap: same content hash %v, want a change", a.Mirror.Hash() == b.Mirror.Hash())
	}
	if !utf8.ValidString(a.Mirror.Description) {
		t.Error("cut description is not valid UTF-8")
	}

	small, err := state.VersionOf("incident", rec("BGP session flaps", "Router down"))
	if err != nil {
		t.Fatal(err)
	}
	whole := state.Mirror{Number: "INC0010001", State: "2", ShortDescription: "Router down", Description: "BGP session flaps", Active: true}
	if small.Mirror != whole || small.Mirror.Hash() != whole.Hash() {
		t.Errorf("mirror %+v, want %+v with the same hash", small.Mirror, whole)
	}
	if enc, _ := json.Marshal(small.Mirror); strings.Contains(string(enc), "sha256") {
		t.Errorf("a whole text's mirror encodes a hash: %s", enc)
	}
}
