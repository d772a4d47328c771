// Package cli is the `2501` command line: the command tree, its help, its
// configuration and its output. cli/main.go only calls Run, so the tests
// drive the real command tree against the AWS emulator and read what it
// prints.
//
// # Commands
//
// A command is a Command value registered from an init function. Its Path
// places it in the tree: registering "infra ticket list" creates the groups
// "infra" and "infra ticket" on the way, and RegisterGroup gives a group its
// one-line description. A new command group is therefore one file:
//
//	func init() {
//		RegisterGroup("infra ticket", "tickets the processor has handled")
//		Register(Command{
//			Path:    "infra ticket show",
//			Short:   "show one ticket",
//			Usage:   "--id <ticket id>",
//			Example: "2501 infra ticket show --id TICKET#gtw_…#incident#…",
//			Flags: func(fs *flag.FlagSet) Action {
//				id := fs.String("id", "", "ticket id (required)")
//				return func(ctx context.Context, c *Call) error {
//					if *id == "" {
//						return Usagef("--id is required")
//					}
//					table, err := c.StateTable(ctx) // resolved only when asked for
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
// Flags is called once per run with the command's own flag set; it declares
// the flags and returns the Action that runs after parsing. Every command
// also gets the global flags (--output, resource names, --stack, --region,
// --endpoint-url); see Call for what an Action can use.
//
// # Errors and exit codes
//
// An Action returns an error and prints nothing about it: Run prints one
// line, "2501: <command>: <message>", on stderr. Usagef errors (bad or
// missing flags) exit with 2, everything else with 1. Errors never carry
// secret values.
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
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

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

// maxWordsCmd bounds how many leading words can name a command.
const maxWordsCmd = 8

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
	Flags func(fs *flag.FlagSet) Action
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
	words := leadingWords(args)
	if len(words) == 0 {
		if len(args) > 0 && isHelpFlag(args[0]) || len(args) == 0 {
			writeHelp(e.Stdout, "")
			return ExitOK
		}
		return e.fail("", Usagef("unknown flag %s before a command (flags follow the command; see %s help)", args[0], Name))
	}
	if words[0] == "help" {
		path := strings.Join(words[1:], " ")
		if cmd, ok := commands[path]; ok {
			writeCommandHelp(e.Stdout, cmd)
			return ExitOK
		}
		if path != "" && !isGroup(path) {
			return e.fail("", Usagef("unknown command %q (see %s help)", path, Name))
		}
		writeHelp(e.Stdout, path)
		return ExitOK
	}
	for n := len(words); n > 0; n-- {
		path := strings.Join(words[:n], " ")
		if cmd, ok := commands[path]; ok {
			return e.runCommand(ctx, cmd, args[n:])
		}
	}
	path := strings.Join(words, " ")
	if isGroup(path) {
		if len(args) > len(words) && isHelpFlag(args[len(words)]) {
			writeHelp(e.Stdout, path)
			return ExitOK
		}
		return e.fail(path, Usagef("choose a command: %s (see %s help %s)", strings.Join(children(path), ", "), Name, path))
	}
	return e.fail("", Usagef("unknown command %q (see %s help)", path, Name))
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

func (e Env) runCommand(ctx context.Context, cmd Command, args []string) int {
	fs := flag.NewFlagSet(cmd.Path, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Run reports parse errors itself, in one line
	action := cmd.Flags(fs)
	c := &Call{Env: e, Command: cmd}
	c.global.register(fs)

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeCommandHelp(e.Stdout, cmd)
			return ExitOK
		}
		return e.fail(cmd.Path, Usagef("%s", strings.TrimPrefix(err.Error(), "flag provided but not defined: ")+hintFor(err)))
	}
	if fs.NArg() > 0 {
		return e.fail(cmd.Path, Usagef("unexpected argument %q (every value is given with a flag; see %s %s --help)", fs.Arg(0), Name, cmd.Path))
	}
	fs.Visit(func(f *flag.Flag) { c.set = append(c.set, f.Name) })
	if err := c.global.validate(); err != nil {
		return e.fail(cmd.Path, err)
	}
	if err := action(ctx, c); err != nil {
		return e.fail(cmd.Path, c.Explain(err))
	}
	return ExitOK
}

func hintFor(err error) string {
	if strings.Contains(err.Error(), "not defined") {
		return " is not a flag of this command"
	}
	return ""
}

// fail prints err as the one line a user sees and returns its exit code.
func (e Env) fail(path string, err error) int {
	prefix := Name + ": "
	if name := displayName(path); name != "" {
		prefix += name + ": "
	}
	fmt.Fprintln(e.Stderr, prefix+oneLine(err.Error()))
	var u *usageError
	if errors.As(err, &u) {
		return ExitUsage
	}
	return ExitError
}

// displayName drops the "infra " every operator command starts with:
// "2501: webhook create: …" reads better than "infra webhook create".
func displayName(path string) string { return strings.TrimPrefix(path, "infra ") }

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

func leadingWords(args []string) []string {
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(words) == maxWordsCmd {
			break
		}
		words = append(words, a)
	}
	return words
}

func isHelpFlag(a string) bool { return a == "-h" || a == "--help" || a == "-help" }

func isGroup(path string) bool {
	for p := range commands {
		if strings.HasPrefix(p, path+" ") {
			return true
		}
	}
	return false
}

// children lists the next words below a group (or the top level for "").
func children(path string) []string {
	seen := map[string]bool{}
	var out []string
	for p := range commands {
		rest, ok := p, path == ""
		if !ok {
			rest, ok = strings.CutPrefix(p, path+" ")
		}
		if !ok {
			continue
		}
		next, _, _ := strings.Cut(rest, " ")
		if !seen[next] {
			seen[next] = true
			out = append(out, next)
		}
	}
	sort.Strings(out)
	return out
}
