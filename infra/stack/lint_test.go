package stack_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// cfn-lint checks the templates against the CloudFormation resource
// specifications: property names and types, value ranges, references.
func TestCfnLint(t *testing.T) {
	// Slow (a Python process, an emulator): overlap with the other tests.
	t.Parallel()
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Skip("cfn-lint not installed (pip install cfn-lint): templates not linted")
	}
	dir := t.TempDir()
	var files []string
	for name, d := range map[string]doc{fx.dataName: fx.dataDoc, fx.svcName: fx.svcDoc, fx.svcName + "-function-url": fx.urlSvcDoc,
		fx.svcName + "-settings": fx.altSvcDoc, fx.edgeName: fx.edgeDoc} {
		b, err := json.MarshalIndent(d, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, name+".template.json")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	config, err := filepath.Abs("../.cfnlintrc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--config-file", config, "--"}, files...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("cfn-lint: %v\n%s", err, out)
	}
}
