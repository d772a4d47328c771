// Package cli is the `2501` command line: the command tree, its help, its
// shell completion, its configuration and its output. cli/2501/main.go only
// calls Run, so the tests drive the real command tree against the AWS
// emulator and read what it prints.
//
// # Commands
//
// A command is a Command value registered from an init function. Its Path
// places it in the tree: registering "infra ticket list" creates the groups
// "infra" and "infra ticket" on the way, and RegisterGroup gives a group its
// one-line description. A new command group is therefore one file:
//
//	func init() {
//		RegisterGroup("infra ticket", "what the processor did with each record")
//		Register(Command{
//			Path:    "infra ticket show",
//			Short:   "show one record's ticket",
//			Usage:   "--table incident|change_request --sys-id <sys_id>",
//			Example: "2501 infra ticket show --table incident --sys-id 9d385017c611228701d22104cc95c371",
//			Flags: func(fs *pflag.FlagSet) Action {
//				table := fs.String("table", "", "ServiceNow table (required)")
//				sysID := fs.String("sys-id", "", "record sys_id (required)")
//				return func(ctx context.Context, c *Call) error {
//					if *table == "" || *sysID == "" {
//						return Usagef("--table and --sys-id are required")
//					}
//					name, err := c.StateTable(ctx) // resolved only when asked for
//					if err != nil {
//						return err
//					}
//					db, err := c.DynamoDB(ctx)
//					…
//					return c.Print(ticket, func(w io.Writer) { fmt.Fprintln(w, …) })
//				}
//			},
//		})
//	}
//
// Each run builds a fresh github.com/spf13/cobra tree from the registrations:
// a cobra command per group and per command, whose flag set (pflag) is handed
// to Flags once; Flags declares the flags and returns the Action that runs
// after parsing. The global flags (--output, the resource names, --stack,
// --region, --endpoint-url) are persistent flags of the root, so they are
// accepted anywhere on the line; see Call for what an Action can use
// (Call.Set reports whether a flag was given). A command file sees only a
// *pflag.FlagSet and a *Call: cobra stays in the files that build the tree,
// its help, its completions and its reference.
//
// The tree also has what cobra users expect: --help on every level and
// `2501 help <command>`, `2501 completion bash|zsh|fish|powershell`,
// `2501 version` and `2501 --version` (from the binary's build information),
// completion of --id and --gateway-id values read from the registry, and of
// the flags that take one of a few words (--event-type, --output, …). The
// hidden `2501 docs cli-reference` writes docs/cli.md from the same tree.
//
// # Errors and exit codes
//
// An Action returns an error and prints nothing about it: Run prints one
// line, "2501: <command>: <message>", on stderr, naming flags the way help
// prints them (--gateway-id). Usagef errors and everything the parser
// rejects (an unknown command or flag, a bad flag value, an unexpected
// argument) exit with 2, every other error with 1. Errors never carry secret
// values, which are read only from stdin (see Call.ReadSecrets).
//
// # Configuration
//
// Resource names come, in order, from a flag (--registry-table, …), the
// SNOWGATE_* environment variable, or the outputs of the deployed
// CloudFormation stack (--stack, $SNOWGATE_STACK, default "snowgate"). Each
// is resolved only when a command asks for it, so a command that needs only
// the registry table works without an API URL.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/pflag"

	"github.com/snowgate/snowgate/internal/awsconfig"
)

// Name is the command's name, in help and error messages.
const Name = "2501"

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1 // the command failed
	ExitUsage = 2 // the command line is wrong
)

// Command is one leaf of the command tree.
type Command struct {
	// Path is the words after "2501", e.g. "infra webhook create".
	Path string
	// Short is a one-line description, shown in listings.
	Short string
	// Usage is the synopsis of the flags, e.g. "--id <whk_…> [--force]".
	Usage string
	// Long is optional extra help, one paragraph or more.
	Long string
	// Example is at least one complete invocation.
	Example string
	// Flags declares the command's flags on fs and returns its Action.
	Flags func(fs *pflag.FlagSet) Action
}

// Action runs a command once its flags are parsed.
type Action func(ctx context.Context, c *Call) error

var (
	commands = map[string]Command{}
	groups   = map[string]string{}
)

// Register adds a command to the tree. It panics on a duplicate path, which
// is a programming error found by any test run.
func Register(cmd Command) {
	if _, dup := commands[cmd.Path]; dup {
		panic("cli: duplicate command " + cmd.Path)
	}
	if cmd.Flags == nil || cmd.Short == "" || cmd.Example == "" {
		panic("cli: command " + cmd.Path + " needs Flags, Short and Example")
	}
	commands[cmd.Path] = cmd
}

// RegisterGroup describes a group of commands in one line.
func RegisterGroup(path, short string) { groups[path] = short }

// usageError is bad input: the user can fix it by changing the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Usagef returns a usage error (exit code 2).
func Usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// actionError is an error an Action returned, with the command it came
// from; every other error out of the tree is the parser's (exit code 2).
type actionError struct {
	path string
	err  error
}

func (e *actionError) Error() string { return e.err.Error() }
func (e *actionError) Unwrap() error { return e.err }

// commandError is a usage error found while choosing the command, reported
// for path ("" for the command line as a whole).
type commandError struct {
	path string
	err  error
}

func (e *commandError) Error() string { return e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

// Env is what a run of the CLI sees of the outside world. Zero fields get
// the process's own: os.Getenv, awsconfig.Load, time.Now.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads configuration variables.
	Getenv func(string) string
	// AWSConfig loads the AWS configuration; the --region and
	// --endpoint-url flags are passed in opts.
	AWSConfig func(ctx context.Context, opts awsconfig.Options) (aws.Config, error)
	// Now is the clock.
	Now func() time.Time
}

// Run runs the command line args (without the program name) and returns
// the exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Env{Stdin: stdin, Stdout: stdout, Stderr: stderr}.Run(ctx, args)
}

// Run runs the command line args in this environment.
func (e Env) Run(ctx context.Context, args []string) int {
	e = e.withDefaults()
	root := e.tree()
	if args == nil {
		args = []string{} // cobra reads os.Args for a nil slice
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var (
		act *actionError
		ce  *commandError
		u   *usageError
	)
	switch {
	case errors.As(err, &act):
		code := ExitError
		if errors.As(act.err, &u) {
			code = ExitUsage
		}
		e.fail(act.path, act.err)
		return code
	case errors.As(err, &ce):
		e.fail(ce.path, ce.err)
	default:
		// The parser's own errors: an unknown flag, a bad value, wrong arguments.
		errors.As(parseError(cmd, err), &ce)
		e.fail(ce.path, ce.err)
	}
	return ExitUsage
}

func (e Env) withDefaults() Env {
	if e.Stdin == nil {
		e.Stdin = strings.NewReader("")
	}
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	if e.Stderr == nil {
		e.Stderr = io.Discard
	}
	if e.Getenv == nil {
		e.Getenv = os.Getenv
	}
	if e.AWSConfig == nil {
		e.AWSConfig = awsconfig.Load
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return e
}

// fail prints err as the one line a user sees.
func (e Env) fail(path string, err error) {
	prefix := Name + ": "
	if name := displayName(path); name != "" {
		prefix += name + ": "
	}
	fmt.Fprintln(e.Stderr, prefix+oneLine(err.Error()))
}

// displayName drops the "infra " every operator command starts with:
// "2501: webhook create: …" reads better than "infra webhook create".
func displayName(path string) string { return strings.TrimPrefix(path, "infra ") }

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
