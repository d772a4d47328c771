package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snowgate/snowgate/internal/reconcile"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/watermark"
)

// indexedTable is a Table API endpoint over one table kept sorted by
// (sys_updated_on, sys_id), as an instance's index on sys_updated_on keeps
// it: a `sys_updated_on>=` query costs a binary search plus the rows
// returned. The simulator scans every row per request, which is right for
// correctness tests but would make the server's time, not the reconciler's,
// grow with the table.
type indexedTable struct {
	rows  []benchRow // sorted
	calls atomic.Int64
}

type benchRow struct{ updated, sysID, version string }

func (t *indexedTable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.calls.Add(1)
	q := r.URL.Query()
	from := ""
	for _, c := range strings.Split(q.Get("sysparm_query"), "^") {
		if v, ok := strings.CutPrefix(c, "sys_updated_on>="); ok {
			from = v
		}
	}
	limit, _ := strconv.Atoi(q.Get("sysparm_limit"))
	offset, _ := strconv.Atoi(q.Get("sysparm_offset"))
	start, _ := slices.BinarySearchFunc(t.rows, from, func(row benchRow, v string) int { return strings.Compare(row.updated, v) })
	lo := min(start+offset, len(t.rows))
	hi := min(lo+limit, len(t.rows))
	result := make([]map[string]string, 0, hi-lo)
	for _, row := range t.rows[lo:hi] {
		result = append(result, map[string]string{"sys_id": row.sysID, "sys_updated_on": row.updated, "sys_mod_count": row.version})
	}
	if hi < len(t.rows) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("sysparm_offset", strconv.Itoa(offset+limit))
		w.Header().Set("Link", fmt.Sprintf(`<http://%s%s?%s>;rel="next"`, r.Host, r.URL.Path, next.Encode()))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"result": result})
}

// BenchmarkRun measures one scheduled run over tables of 10 000 and 100 000
// records of which 0.1 % and 1 % changed since the watermark. Each
// iteration is a new gateway whose watermark is set just before the
// changes, so it reads, looks up, enqueues and advances for real (DynamoDB
// and SQS on the emulator). Reported: ServiceNow calls, pages and records
// enqueued per run; ns/op is the time per run.
func BenchmarkRun(b *testing.B) {
	for _, size := range []int{10_000, 100_000} {
		for _, permille := range []int{1, 10} {
			b.Run(fmt.Sprintf("records=%d/changed=%.1f%%", size, float64(permille)/10), func(b *testing.B) {
				benchRun(b, size, size*permille/1000)
			})
		}
	}
}

func benchRun(b *testing.B, size, changed int) {
	e := newEnv(b, envOptions{})
	mark := e.clk.now().Add(-time.Hour)
	tbl := &indexedTable{}
	// Unchanged records over the 30 days before the watermark, changed ones
	// over the 10 minutes after it.
	for i := range size {
		at := mark.Add(-30 * 24 * time.Hour / time.Duration(size) * time.Duration(size-i))
		if i >= size-changed {
			at = mark.Add(time.Duration(i-(size-changed)+1) * 10 * time.Minute / time.Duration(changed))
		}
		tbl.rows = append(tbl.rows, benchRow{updated: at.UTC().Format(watermark.TimeLayout), sysID: fmt.Sprintf("%032x", i), version: "3"})
	}
	slices.SortFunc(tbl.rows, func(a, b benchRow) int { return strings.Compare(a.updated+a.sysID, b.updated+b.sysID) })
	srv := httptest.NewServer(tbl)
	b.Cleanup(srv.Close)

	r := e.reconciler(reconcile.Config{PageSize: 100})
	var calls, pages, enqueued int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		gw := e.addGateway("bench", srv.URL, "")
		e.addWebhookTo(gw, registry.TableIncident, mark)
		if err := e.marks.Advance(context.Background(), gw, registry.TableIncident, watermark.Position{UpdatedOn: mark, SysID: "x"}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rep, err := r.Run(context.Background(), reconcile.Options{GatewayID: gw})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		res := rep.Results[0]
		if res.Err != nil || !res.Done || res.Enqueued != changed {
			b.Fatalf("run: enqueued %d of %d, done %v, err %v", res.Enqueued, changed, res.Done, res.Err)
		}
		calls += res.Calls
		pages += res.Pages
		enqueued += res.Enqueued
		e.drain()
		b.StartTimer()
	}
	b.ReportMetric(float64(calls)/float64(b.N), "calls/run")
	b.ReportMetric(float64(pages)/float64(b.N), "pages/run")
	b.ReportMetric(float64(enqueued)/float64(b.N), "enqueued/run")
}
