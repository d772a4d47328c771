package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/spf13/pflag"

	"github.com/snowgate/snowgate/internal/awsconfig"
	"github.com/snowgate/snowgate/internal/registry"
	"github.com/snowgate/snowgate/internal/schema"
	"github.com/snowgate/snowgate/internal/secrets"
)

// Output formats.
const (
	OutputText = "text"
	OutputJSON = "json"
)

// globalFlags are accepted by every command.
type globalFlags struct {
	output           string
	apiURL           string
	registryTable    string
	stateTable       string
	intakeQueueURL   string
	intakeDLQURL     string
	dispatchQueueURL string
	dispatchDLQURL   string
	resultsQueueURL  string
	resultsDLQURL    string
	secretPrefix     string
	stack            string
	region           string
	endpoint         string
}

func (g *globalFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&g.output, "output", OutputText, "output format: text or json")
	fs.StringVar(&g.apiURL, "api-url", "", "API base URL (else $"+schema.EnvAPIURL+" or the stack output "+schema.OutputAPIURL+")")
	fs.StringVar(&g.registryTable, "registry-table", "", "registry table name (else $"+schema.EnvRegistryTable+" or the stack output)")
	fs.StringVar(&g.stateTable, "state-table", "", "state table name (else $"+schema.EnvStateTable+" or the stack output)")
	fs.StringVar(&g.intakeQueueURL, "intake-queue-url", "", "intake queue URL (else $"+schema.EnvIntakeQueueURL+" or the stack output)")
	fs.StringVar(&g.intakeDLQURL, "intake-dlq-url", "", "intake dead-letter queue URL (else $"+schema.EnvIntakeDLQURL+" or the stack output)")
	fs.StringVar(&g.dispatchQueueURL, "dispatch-queue-url", "", "dispatch queue URL (else $"+schema.EnvDispatchQueueURL+" or the stack output)")
	fs.StringVar(&g.dispatchDLQURL, "dispatch-dlq-url", "", "dispatch dead-letter queue URL (else $"+schema.EnvDispatchDLQURL+" or the stack output)")
	fs.StringVar(&g.resultsQueueURL, "results-queue-url", "", "results queue URL (else $"+schema.EnvResultsQueueURL+" or the stack output)")
	fs.StringVar(&g.resultsDLQURL, "results-dlq-url", "", "results dead-letter queue URL (else $"+schema.EnvResultsDLQURL+" or the stack output)")
	fs.StringVar(&g.secretPrefix, "secret-prefix", "", "Secrets Manager name prefix (else $"+schema.EnvSecretPrefix+", the stack output "+schema.OutputSecretPrefix+", or "+schema.SecretPrefix("<stack>")+")")
	fs.StringVar(&g.stack, "stack", "", "CloudFormation stack to read outputs from (else $"+schema.EnvStack+" or "+schema.DefaultStackName+")")
	fs.StringVar(&g.region, "region", "", "AWS region (else the SDK's: AWS_REGION, profile)")
	fs.StringVar(&g.endpoint, "endpoint-url", "", "AWS endpoint for every service, e.g. a local emulator (else $AWS_ENDPOINT_URL)")
}

func (g *globalFlags) validate() error {
	if g.output != OutputText && g.output != OutputJSON {
		return Usagef("--output must be text or json")
	}
	return nil
}

// Call is one run of a command: its environment, its flags, and the
// configuration and AWS clients it resolves on first use.
type Call struct {
	Env
	Command Command

	global globalFlags
	set    []string // flags given on the command line

	mu         sync.Mutex
	cfg        *aws.Config
	outputs    map[string]string
	outputsErr error
	resolved   map[string]string // setting name -> value, for error messages
	store      *registry.Store
	secrets    *secrets.Store
}

// Set reports whether a flag was given on the command line.
func (c *Call) Set(name string) bool { return slices.Contains(c.set, name) }

// JSON reports whether --output json was asked for.
func (c *Call) JSON() bool { return c.global.output == OutputJSON }

// Print writes v as indented JSON with --output json, else calls text.
func (c *Call) Print(v any, text func(w io.Writer)) error {
	if c.JSON() {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("write JSON: %w", err)
		}
		return nil
	}
	text(c.Stdout)
	return nil
}

// setting is one resolvable configuration value.
type setting struct {
	name   string // in messages
	flag   string
	env    string
	output string
}

var (
	settingAPIURL        = setting{"API URL", "api-url", schema.EnvAPIURL, schema.OutputAPIURL}
	settingRegistryTable = setting{"registry table", "registry-table", schema.EnvRegistryTable, schema.OutputRegistryTable}
	settingStateTable    = setting{"state table", "state-table", schema.EnvStateTable, schema.OutputStateTable}
	settingIntakeQueue   = setting{"intake queue URL", "intake-queue-url", schema.EnvIntakeQueueURL, schema.OutputIntakeQueueURL}
	settingIntakeDLQ     = setting{"intake DLQ URL", "intake-dlq-url", schema.EnvIntakeDLQURL, schema.OutputIntakeDLQURL}
	settingDispatchQueue = setting{"dispatch queue URL", "dispatch-queue-url", schema.EnvDispatchQueueURL, schema.OutputDispatchQueueURL}
	settingDispatchDLQ   = setting{"dispatch DLQ URL", "dispatch-dlq-url", schema.EnvDispatchDLQURL, schema.OutputDispatchDLQURL}
	settingResultsQueue  = setting{"results queue URL", "results-queue-url", schema.EnvResultsQueueURL, schema.OutputResultsQueueURL}
	settingResultsDLQ    = setting{"results DLQ URL", "results-dlq-url", schema.EnvResultsDLQURL, schema.OutputResultsDLQURL}
)

func (c *Call) flagValue(s setting) string {
	switch s.flag {
	case "api-url":
		return c.global.apiURL
	case "registry-table":
		return c.global.registryTable
	case "state-table":
		return c.global.stateTable
	case "intake-queue-url":
		return c.global.intakeQueueURL
	case "intake-dlq-url":
		return c.global.intakeDLQURL
	case "dispatch-queue-url":
		return c.global.dispatchQueueURL
	case "dispatch-dlq-url":
		return c.global.dispatchDLQURL
	case "results-queue-url":
		return c.global.resultsQueueURL
	case "results-dlq-url":
		return c.global.resultsDLQURL
	}
	return ""
}

// resolve returns a setting from its flag, its variable or the stack
// outputs, in that order; the stack is read at most once per call.
func (c *Call) resolve(ctx context.Context, s setting) (string, error) {
	v := c.flagValue(s)
	if v == "" {
		v = c.Getenv(s.env)
	}
	if v == "" {
		outputs, err := c.stackOutputs(ctx)
		if err != nil {
			return "", fmt.Errorf("no %s: set --%s or %s, or deploy the stack (%v)", s.name, s.flag, s.env, err)
		}
		if v = outputs[s.output]; v == "" {
			return "", fmt.Errorf("no %s: set --%s or %s (stack %s has no output %s)", s.name, s.flag, s.env, c.stackName(), s.output)
		}
	}
	c.mu.Lock()
	if c.resolved == nil {
		c.resolved = map[string]string{}
	}
	c.resolved[s.name] = v
	c.mu.Unlock()
	return v, nil
}

// known returns a setting only when it is available without asking AWS:
// from a flag, a variable or stack outputs already read.
func (c *Call) known(s setting) string {
	if v := c.flagValue(s); v != "" {
		return v
	}
	if v := c.Getenv(s.env); v != "" {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outputs[s.output]
}

// APIURL is the base URL of the HTTP API, without a trailing slash.
func (c *Call) APIURL(ctx context.Context) (string, error) {
	v, err := c.resolve(ctx, settingAPIURL)
	return strings.TrimRight(v, "/"), err
}

// RegistryTable is the registry table's name.
func (c *Call) RegistryTable(ctx context.Context) (string, error) {
	return c.resolve(ctx, settingRegistryTable)
}

// StateTable is the state table's name.
func (c *Call) StateTable(ctx context.Context) (string, error) {
	return c.resolve(ctx, settingStateTable)
}

// IntakeQueueURL is the intake queue's URL.
func (c *Call) IntakeQueueURL(ctx context.Context) (string, error) {
	return c.resolve(ctx, settingIntakeQueue)
}

// IntakeDLQURL is the intake dead-letter queue's URL.
func (c *Call) IntakeDLQURL(ctx context.Context) (string, error) {
	return c.resolve(ctx, settingIntakeDLQ)
}

// DispatchQueueURL is the dispatch queue's URL.
func (c *Call) DispatchQueueURL(ctx context.Context) (string, error) {
	return c.resolve(ctx, settingDispatchQueue)
}

// DispatchDLQURL is the dispatch dead-letter queue's URL.
func (c *Call) DispatchDLQURL(ctx context.Context) (string, error) {
	return c.resolve(ctx, settingDispatchDLQ)
}

// ResultsQueueURL is the results queue's URL.
func (c *Call) ResultsQueueURL(ctx context.Context) (string, error) {
	return c.resolve(ctx, settingResultsQueue)
}

// ResultsDLQURL is the results dead-letter queue's URL.
func (c *Call) ResultsDLQURL(ctx context.Context) (string, error) {
	return c.resolve(ctx, settingResultsDLQ)
}

// SecretPrefix prefixes the names of the secrets the CLI creates: the flag,
// the variable, the stack's output (the stack is read for it if it was not
// read yet), or, when the stack cannot be read or has no such output, the
// stack's default (schema.SecretPrefix of the stack's name). The functions
// may read only the secrets under the prefix the stack was deployed with.
func (c *Call) SecretPrefix(ctx context.Context) string {
	if c.global.secretPrefix != "" {
		return c.global.secretPrefix
	}
	if v := c.Getenv(schema.EnvSecretPrefix); v != "" {
		return v
	}
	if outputs, err := c.stackOutputs(ctx); err == nil && outputs[schema.OutputSecretPrefix] != "" {
		return outputs[schema.OutputSecretPrefix]
	}
	return schema.SecretPrefix(c.stackName())
}

func (c *Call) stackName() string {
	if c.global.stack != "" {
		return c.global.stack
	}
	if v := c.Getenv(schema.EnvStack); v != "" {
		return v
	}
	return schema.DefaultStackName
}

func (c *Call) stackOutputs(ctx context.Context) (map[string]string, error) {
	c.mu.Lock()
	done := c.outputs != nil || c.outputsErr != nil
	outputs, err := c.outputs, c.outputsErr
	c.mu.Unlock()
	if done {
		return outputs, err
	}
	outputs, err = c.readStack(ctx)
	c.mu.Lock()
	c.outputs, c.outputsErr = outputs, err
	c.mu.Unlock()
	return outputs, err
}

func (c *Call) readStack(ctx context.Context) (map[string]string, error) {
	cfg, err := c.AWS(ctx)
	if err != nil {
		return nil, err
	}
	name := c.stackName()
	out, err := cloudformation.NewFromConfig(cfg).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if err != nil {
		return nil, fmt.Errorf("read stack %s: %s", name, describeAWSError(err))
	}
	if len(out.Stacks) == 0 {
		return nil, fmt.Errorf("stack %s not found", name)
	}
	outputs := map[string]string{}
	for _, o := range out.Stacks[0].Outputs {
		outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return outputs, nil
}

// AWS returns the AWS configuration, loaded once.
func (c *Call) AWS(ctx context.Context) (aws.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg != nil {
		return *c.cfg, nil
	}
	cfg, err := c.AWSConfig(ctx, awsconfig.Options{Region: c.global.region, Endpoint: c.global.endpoint})
	if err != nil {
		return aws.Config{}, err
	}
	c.cfg = &cfg
	return cfg, nil
}

// DynamoDB returns a DynamoDB client.
func (c *Call) DynamoDB(ctx context.Context) (*dynamodb.Client, error) {
	cfg, err := c.AWS(ctx)
	if err != nil {
		return nil, err
	}
	return dynamodb.NewFromConfig(cfg), nil
}

// SQS returns an SQS client.
func (c *Call) SQS(ctx context.Context) (*sqs.Client, error) {
	cfg, err := c.AWS(ctx)
	if err != nil {
		return nil, err
	}
	return sqs.NewFromConfig(cfg), nil
}

// Registry returns the registry store over the resolved registry table.
func (c *Call) Registry(ctx context.Context) (*registry.Store, error) {
	if c.store != nil {
		return c.store, nil
	}
	table, err := c.RegistryTable(ctx)
	if err != nil {
		return nil, err
	}
	db, err := c.DynamoDB(ctx)
	if err != nil {
		return nil, err
	}
	c.store = registry.New(db, table, registry.WithClock(c.Now))
	return c.store, nil
}

// Secrets returns the Secrets Manager store.
func (c *Call) Secrets(ctx context.Context) (*secrets.Store, error) {
	if c.secrets != nil {
		return c.secrets, nil
	}
	cfg, err := c.AWS(ctx)
	if err != nil {
		return nil, err
	}
	c.secrets = secrets.New(secretsmanager.NewFromConfig(cfg))
	return c.secrets, nil
}

// Explain turns an AWS error into the one line a user can act on: which
// table is missing, which endpoint cannot be reached. Actions wrap errors
// with context as usual; Run passes the result through Explain.
func (c *Call) Explain(err error) error {
	var nf *ddbtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		c.mu.Lock()
		var names []string
		for _, k := range []string{settingRegistryTable.name, settingStateTable.name} {
			if v := c.resolved[k]; v != "" {
				names = append(names, fmt.Sprintf("%s %q", k, v))
			}
		}
		c.mu.Unlock()
		return fmt.Errorf("DynamoDB table not found (%s): check --registry-table / --state-table or the SNOWGATE_* variables", strings.Join(names, ", "))
	}
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) {
		where := "AWS"
		c.mu.Lock()
		if c.cfg != nil && c.cfg.BaseEndpoint != nil {
			where = *c.cfg.BaseEndpoint
		}
		c.mu.Unlock()
		return fmt.Errorf("cannot reach %s: %v", where, send.Err)
	}
	return err
}

// describeAWSError shortens an SDK error to its API error message.
func describeAWSError(err error) string {
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) {
		return "cannot reach AWS: " + send.Err.Error()
	}
	s := err.Error()
	if i := strings.LastIndex(s, "api error "); i >= 0 {
		return s[i+len("api error "):]
	}
	return s
}
