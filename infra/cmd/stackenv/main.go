// Command stackenv turns the outputs file written by `cdk deploy
// --outputs-file` into SNOWGATE_* environment assignments, one per line, so
// that tests and tools can run against a deployment:
//
//	go run ./cmd/stackenv -stack snowgate < outputs.json > snowgate.env
//
// Extra KEY=VALUE arguments are printed first (AWS_ENDPOINT_URL for LocalStack).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/snowgate/snowgate/internal/schema"
)

// envFor maps each stack output to the variable programs read it from.
var envFor = map[string]string{
	schema.OutputAPIURL:           schema.EnvAPIURL,
	schema.OutputRegistryTable:    schema.EnvRegistryTable,
	schema.OutputStateTable:       schema.EnvStateTable,
	schema.OutputIntakeQueueURL:   schema.EnvIntakeQueueURL,
	schema.OutputIntakeDLQURL:     schema.EnvIntakeDLQURL,
	schema.OutputDispatchQueueURL: schema.EnvDispatchQueueURL,
	schema.OutputDispatchDLQURL:   schema.EnvDispatchDLQURL,
	schema.OutputResultsQueueURL:  schema.EnvResultsQueueURL,
	schema.OutputResultsDLQURL:    schema.EnvResultsDLQURL,
	schema.OutputSecretPrefix:     schema.EnvSecretPrefix,
}

func main() {
	stackName := flag.String("stack", schema.DefaultStackName, "service stack whose outputs to read")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, *stackName, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "stackenv:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, stackName string, extra []string) error {
	var all map[string]map[string]string
	if err := json.NewDecoder(in).Decode(&all); err != nil {
		return fmt.Errorf("read outputs: %w", err)
	}
	outputs, ok := all[stackName]
	if !ok {
		return fmt.Errorf("no outputs for stack %q in the file", stackName)
	}
	lines := append([]string(nil), extra...)
	lines = append(lines, schema.EnvStack+"="+stackName)
	keys := make([]string, 0, len(envFor))
	for k := range envFor {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := outputs[k]
		if !ok {
			return fmt.Errorf("stack %s has no output %s", stackName, k)
		}
		lines = append(lines, envFor[k]+"="+v)
	}
	_, err := io.WriteString(out, strings.Join(lines, "\n")+"\n")
	return err
}
