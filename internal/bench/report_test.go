package bench_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/snowgate/snowgate/internal/bench"
)

const (
	before = "# Performance\n\nHow it is measured.\n\n## Latest results\n\n" + bench.BeginMarker
	after  = bench.EndMarker + "\n\n## Reading the tables\n\nText after the block.\n"
)

func TestSplice(t *testing.T) {
	tables := "Measured by `make bench` on 2026-12-01 20:00 UTC.\n\n### 1. Ingest handler\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
	want := before + "\n\n" + strings.TrimSpace(tables) + "\n\n" + after
	tests := []struct {
		name, doc string
	}{
		{name: "empty block", doc: before + after},
		{name: "block with the tables of the run before", doc: before + "\n\nMeasured on 2026-11-27.\n\n| old |\n|---|\n\n" + after},
		{name: "markers on one line", doc: before + " stale " + after},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bench.Splice([]byte(tt.doc), []byte(tables))
			if err != nil {
				t.Fatalf("Splice() error = %v", err)
			}
			if diff := cmp.Diff(want, string(got)); diff != "" {
				t.Errorf("Splice() mismatch (-want +got):\n%s", diff)
			}
			// A second run replaces the first one's tables and nothing else.
			again, err := bench.Splice(got, []byte("new tables\n"))
			if err != nil {
				t.Fatalf("second Splice() error = %v", err)
			}
			if diff := cmp.Diff(before+"\n\nnew tables\n\n"+after, string(again)); diff != "" {
				t.Errorf("second Splice() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSpliceMarkers(t *testing.T) {
	tests := []struct {
		name, doc, wantMsg string
	}{
		{name: "no markers", doc: "# Performance\n", wantMsg: "neither"},
		{name: "no begin marker", doc: "x\n" + bench.EndMarker + "\n", wantMsg: bench.BeginMarker + " not found"},
		{name: "no end marker", doc: bench.BeginMarker + "\nx\n", wantMsg: bench.EndMarker + " not found"},
		{name: "end before begin", doc: bench.EndMarker + "\nx\n" + bench.BeginMarker + "\n", wantMsg: "comes before"},
		{name: "two blocks", doc: before + after + before + after, wantMsg: "found 2 and 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bench.Splice([]byte(tt.doc), []byte("tables"))
			if !errors.Is(err, bench.ErrMarkers) {
				t.Fatalf("Splice(%q) = %q, %v, want an error wrapping ErrMarkers", tt.doc, got, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Splice(%q) error = %q, want it to say %q", tt.doc, err, tt.wantMsg)
			}
		})
	}
}

func TestSpliceFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "performance.md")
	if err := os.WriteFile(path, []byte(before+after), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := bench.SpliceFile(path, []byte("tables")); err != nil {
		t.Fatalf("SpliceFile() error = %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before+"\n\ntables\n\n"+after, string(got)); diff != "" {
		t.Errorf("page after SpliceFile() mismatch (-want +got):\n%s", diff)
	}

	// A page without markers is an error and stays as it was.
	bare := filepath.Join(dir, "bare.md")
	if err := os.WriteFile(bare, []byte("# Performance\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := bench.SpliceFile(bare, []byte("tables")); !errors.Is(err, bench.ErrMarkers) {
		t.Errorf("SpliceFile(page without markers) = %v, want an error wrapping ErrMarkers", err)
	}
	if b, _ := os.ReadFile(bare); string(b) != "# Performance\n" {
		t.Errorf("page without markers changed to %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d files after SpliceFile, want 2 (no temporary file left)", len(entries))
	}
}

// The committed page must keep one pair of markers, or make bench fails
// after measuring for minutes.
func TestPerformancePageHasMarkers(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "performance.md"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bench.Splice(doc, []byte("tables")); err != nil {
		t.Errorf("docs/performance.md: %v", err)
	}
}

// What Markdown writes goes between the markers, header first, and a second
// run's tables replace the first's.
func TestMarkdownSpliced(t *testing.T) {
	page := []byte(before + after)
	for _, day := range []int{1, 2} {
		rep := &bench.Report{Started: time.Date(2026, 12, day, 20, 0, 0, 0, time.UTC), Runs: 3, Machine: "2 cores (test)"}
		var md bytes.Buffer
		rep.Markdown(&md)
		var err error
		if page, err = bench.Splice(page, md.Bytes()); err != nil {
			t.Fatalf("Splice(Markdown()) error = %v", err)
		}
		s := string(page)
		header := fmt.Sprintf("%s\n\nMeasured by `make bench` on 2026-12-0%d 20:00 UTC, 2 cores (test);", bench.BeginMarker, day)
		if !strings.HasPrefix(s, before) || !strings.HasSuffix(s, "\n\n"+after) || !strings.Contains(s, header) {
			t.Errorf("page after run %d:\n%s\nwant it to keep the text around the markers and open the block with %q", day, s, header)
		}
		if n := strings.Count(s, "Measured by"); n != 1 {
			t.Errorf("page after run %d holds %d headers, want 1", day, n)
		}
	}
}
