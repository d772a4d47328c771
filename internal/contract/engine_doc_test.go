package contract_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/snowgate/snowgate/docs"
	"github.com/snowgate/snowgate/internal/contract"
)

// TestEngineGuideExamples validates the worked example of docs/engine.md,
// every JSON block of it, against the contract, and checks that the page
// links both schemas: the page engines read says what the code does.
func TestEngineGuideExamples(t *testing.T) {
	page, err := os.ReadFile("../../docs/engine.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{docs.EventSchema, docs.ResultSchema} {
		if !strings.Contains(string(page), "("+path+")") {
			t.Errorf("docs/engine.md does not link %s", path)
		}
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(page), -1)
	var events, results int
	for _, b := range blocks {
		body := []byte(b[1])
		if strings.Contains(b[1], `"result_id"`) {
			results++
			if err := contract.ValidateResult(body); err != nil {
				t.Errorf("docs/engine.md result example: %v\n%s", err, body)
			}
			continue
		}
		events++
		if err := contract.ValidateEvent(body); err != nil {
			t.Errorf("docs/engine.md event example: %v\n%s", err, body)
		}
	}
	if events < 2 || results < 1 {
		t.Errorf("docs/engine.md has %d event and %d result examples, want a job.created, a job.updated and a result", events, results)
	}
}
