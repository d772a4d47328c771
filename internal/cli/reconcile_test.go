package cli_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snowgate/snowgate/internal/awstest"
	"github.com/snowgate/snowgate/internal/queue"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/snowsim"
)

func TestReconcileCommand(t *testing.T) {
	h := newHarness(t)
	res := awstest.Resources(t)
	h.env[schema.EnvStateTable] = res.StateTable
	h.env[schema.EnvIntakeQueueURL] = res.IntakeQueueURL
	sim, err := snowsim.Start("127.0.0.1:0", snowsim.WithUser("svc", "pa55word"), snowsim.WithClock(h.clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	g := h.gateway("ops", "--instance-url", sim.URL)
	h.ok("", "infra", "webhook", "create", "--name", "inc", "--source-type", "servicenow", "--event-type", "incident", "--gateway-id", g.ID)

	var ids []string
	for range 3 {
		h.advance(time.Second)
		rec, err := sim.Sim.Insert("incident", map[string]string{"short_description": "lost"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec["sys_id"])
	}
	h.advance(2 * time.Minute)

	// Not a terminal: plain progress lines on stderr, a summary on stdout.
	r := h.run("", "infra", "reconcile", "--since", "1h")
	if r.code != 0 {
		t.Fatalf("reconcile: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, g.ID+" incident: done, 3 scanned, 3 enqueued") {
		t.Errorf("progress lines:\n%s", r.stderr)
	}
	for _, want := range []string{"ENQUEUED", "3 enqueued, 0 already processed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
	got := map[string]bool{}
	for _, im := range awstest.DrainJSON[queue.IntakeMessage](t, sqs.NewFromConfig(h.cfg), res.IntakeQueueURL) {
		if im.Source != queue.SourceReconcile {
			t.Errorf("message source %q, want reconcile", im.Source)
		}
		got[im.SysID] = true
	}
	for _, id := range ids {
		if !got[id] {
			t.Errorf("record %s not enqueued", id)
		}
	}

	var view struct {
		Passes []struct {
			Table    string `json:"table"`
			Scanned  int    `json:"scanned"`
			Enqueued int    `json:"enqueued"`
			Done     bool   `json:"done"`
		} `json:"passes"`
	}
	h.json(&view, "", "infra", "reconcile", "--event-type", "incident")
	if len(view.Passes) != 1 || !view.Passes[0].Done || view.Passes[0].Table != "incident" {
		t.Errorf("reconcile --output json = %+v", view)
	}

	for _, tc := range []struct{ args []string }{
		{[]string{"--event-type", "problem"}},
		{[]string{"--gateway-id", "nope"}},
		{[]string{"--since", "yesterday"}},
	} {
		if r := h.run("", append([]string{"infra", "reconcile"}, tc.args...)...); r.code != 2 {
			t.Errorf("reconcile %v: exit %d, want 2", tc.args, r.code)
		}
	}
}
