package ingest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/snowgate/snowgate/internal/ingest"
	"github.com/snowgate/snowgate/internal/metrics"
)

func emitter(w io.Writer) *metrics.Emitter { return metrics.New(w) }

// counts reads EMF lines and sums each metric by "name/webhook_id", or by
// "name" for a line without a webhook, checking the dimension sets: the
// function alone, plus function and webhook_id when a webhook is named.
func counts(t *testing.T, emf *bytes.Buffer) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(emf.Bytes()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("EMF line %q: %v", sc.Text(), err)
		}
		var aws struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		}
		b, _ := json.Marshal(line["_aws"])
		if err := json.Unmarshal(b, &aws); err != nil || len(aws.CloudWatchMetrics) != 1 {
			t.Fatalf("EMF line %q has no metric directive", sc.Text())
		}
		d := aws.CloudWatchMetrics[0]
		if line["function"] != ingest.FunctionName || d.Namespace != metrics.Namespace {
			t.Errorf("EMF line %q: want function %q in namespace %q", sc.Text(), ingest.FunctionName, metrics.Namespace)
		}
		webhook, _ := line["webhook_id"].(string)
		wantSets := [][]string{{"function"}}
		if webhook != "" {
			wantSets = append(wantSets, []string{"function", "webhook_id"})
		}
		if diff := cmp.Diff(wantSets, d.Dimensions); diff != "" {
			t.Errorf("EMF dimension sets (-want +got):\n%s", diff)
		}
		for _, m := range d.Metrics {
			if m.Unit != metrics.Count {
				t.Errorf("metric %s unit %q, want Count", m.Name, m.Unit)
			}
			v, _ := line[m.Name].(float64)
			key := m.Name
			if webhook != "" {
				key += "/" + webhook
			}
			out[key] += v
		}
	}
	return out
}

// TestMetrics: refused requests are counted, Unauthorized for 401s and
// Rejected for other 4xx, per webhook when the request reached one and
// for the function alone when it did not (an unknown or malformed path, a
// protocol error found before the lookup); accepted requests are not.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.registrations(t)
	var emf bytes.Buffer
	h := e.handler(t, &clock{t: now}, ingest.Options{Replays: e.replays(), Metrics: emitter(&emf)})
	acme := withInstance("acme")
	hmacOnce := req{path: hmacPath, signed: signed(t, signingKey, "msg_m1", now, acme), body: acme}
	for _, r := range []req{
		{secret: testSecret, body: acme},                                          // accepted: not counted
		{secret: "guess", body: minimalBody},                                      // Unauthorized/webhook
		{secret: testSecret, body: withInstance("acmedev")},                       // Unauthorized/webhook
		{path: "a00000000000000000000001", secret: testSecret, body: minimalBody}, // inactive: Unauthorized/webhook
		{path: "ffffffffffffffffffffffff", secret: testSecret, body: minimalBody}, // unknown: Unauthorized
		{path: "not-a-path", secret: testSecret, body: minimalBody},               // malformed: Unauthorized
		{secret: testSecret, body: `{"sys_id":1}`},                                // Rejected/webhook
		{secret: testSecret, body: minimalBody, ct: "text/plain"},                 // Rejected
		{method: "GET", secret: testSecret},                                       // Rejected
		{secret: testSecret, body: `{"sys_id":"` + validSysID + `","x":"` + strings.Repeat("x", ingest.MaxBody) + `"}`, chunked: true}, // Rejected/webhook (413)
		{secret: testSecret, body: `{"sys_id":"` + validSysID + `","instance_name":null}`},                                             // old rule: NoInstanceName/webhook
		hmacOnce, hmacOnce, // the second: Duplicate/webhook
	} {
		r.do(t, h)
	}
	want := map[string]float64{
		ingest.MetricUnauthorized + "/" + webhookID:   3,
		ingest.MetricUnauthorized:                     2,
		ingest.MetricRejected + "/" + webhookID:       2,
		ingest.MetricRejected:                         2,
		ingest.MetricNoInstanceName + "/" + webhookID: 1,
		ingest.MetricDuplicate + "/" + hmacWebhook:    1,
	}
	if diff := cmp.Diff(want, counts(t, &emf)); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	e.drain(t)
}
