package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// configHelp is the root help's note on where settings come from.
const configHelp = `Configuration (each value is looked up only when a command needs it):
  resource names   --registry-table, --state-table, --api-url, --*-queue-url flags,
                   else SNOWGATE_REGISTRY_TABLE, SNOWGATE_STATE_TABLE, SNOWGATE_API_URL, …,
                   else the outputs of the CloudFormation stack (--stack, SNOWGATE_STACK, default "snowgate")
  AWS              the SDK's usual settings: AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, …
                   (--region and --endpoint-url override them)
  output           --output text (default) or --output json on every command
  secrets          only ever read from stdin (--password-stdin, --client-secret-stdin)
`

// writeHelp prints c's help: a command's synopsis, flags and examples, or
// the commands below a group.
func writeHelp(w io.Writer, c *cobra.Command) {
	if isCommand(c) {
		writeCommandHelp(w, c)
		return
	}
	if !c.HasParent() {
		fmt.Fprintf(w, "%s — %s.\n\nUsage:\n  %s <command> [flags]\n  %s help <command>\n", Name, c.Short, Name, Name)
	} else {
		fmt.Fprintf(w, "%s — %s\n\nUsage:\n  %s <command> [flags]\n", c.CommandPath(), titleOf(c), c.CommandPath())
	}
	if c.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Long))
	}
	ours, others := listing(c)
	width := 0
	for _, d := range append(slices.Clone(ours), others...) {
		width = max(width, len(d.CommandPath()))
	}
	if len(ours) > 0 {
		fmt.Fprintln(w, "\nCommands:")
		writeListing(w, ours, width)
	}
	if len(others) > 0 {
		if len(ours) > 0 {
			fmt.Fprintln(w, "\nOther commands:")
		} else {
			fmt.Fprintln(w, "\nCommands:")
		}
		writeListing(w, others, width)
	}
	fmt.Fprintf(w, "\nRun '%s <command> --help' for a command's flags and an example.\n", Name)
	if !c.HasParent() {
		fmt.Fprintf(w, "\n%s", configHelp)
		fmt.Fprintf(w, "\nFlags (every command takes them):\n%s", c.LocalFlags().FlagUsages())
	} else if c.HasAvailableInheritedFlags() {
		fmt.Fprintf(w, "\nGlobal flags (every command):\n%s", c.InheritedFlags().FlagUsages())
	}
}

// writeCommandHelp prints one command's synopsis, description, flags and
// examples.
func writeCommandHelp(w io.Writer, c *cobra.Command) {
	fmt.Fprintf(w, "%s — %s\n\nUsage:\n  %s\n", c.CommandPath(), c.Short, c.UseLine())
	if c.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Long))
	}
	if c.HasAvailableLocalFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", c.LocalFlags().FlagUsages())
	}
	if c.Example != "" {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, line := range strings.Split(strings.TrimSpace(c.Example), "\n") {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	if c.HasAvailableInheritedFlags() {
		fmt.Fprintf(w, "\nGlobal flags (every command):\n%s", c.InheritedFlags().FlagUsages())
	}
}

// isCommand reports whether c runs something (rather than only listing the
// commands below it).
func isCommand(c *cobra.Command) bool {
	if _, ok := c.Annotations[annotationPath]; ok {
		return true
	}
	return !c.HasAvailableSubCommands() && c.Runnable()
}

func titleOf(c *cobra.Command) string {
	if c.Short != "" {
		return c.Short
	}
	return "commands"
}

// listing returns the commands below c, each with its full path: the
// registered ones, and cobra's own (completion, version).
func listing(c *cobra.Command) (ours, others []*cobra.Command) {
	for _, sub := range c.Commands() {
		walk(sub, func(d *cobra.Command) {
			if !available(d) || !isCommand(d) {
				return
			}
			if _, ok := d.Annotations[annotationPath]; ok {
				ours = append(ours, d)
			} else {
				others = append(others, d)
			}
		})
	}
	return ours, others
}

// available is IsAvailableCommand for c and every group above it.
func available(c *cobra.Command) bool {
	for ; c.HasParent(); c = c.Parent() {
		if !c.IsAvailableCommand() {
			return false
		}
	}
	return true
}

// writeListing prints one command a line, the descriptions aligned at width.
func writeListing(w io.Writer, cmds []*cobra.Command, width int) {
	for _, d := range cmds {
		fmt.Fprintf(w, "  %-*s   %s\n", width, d.CommandPath(), d.Short)
	}
}
