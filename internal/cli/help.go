package cli

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// writeHelp lists the commands under a group ("" for all).
func writeHelp(w io.Writer, group string) {
	if group == "" {
		fmt.Fprintf(w, "%s — the snowgate command line: ServiceNow gateways, webhooks and what the pipeline did.\n\n", Name)
		fmt.Fprintf(w, "Usage:\n  %s <command> [flags]\n  %s help <command>\n\n", Name, Name)
	} else {
		title := groups[group]
		if title == "" {
			title = "commands"
		}
		fmt.Fprintf(w, "%s %s: %s\n\n", Name, group, title)
	}
	var paths []string
	for p := range commands {
		if group == "" || strings.HasPrefix(p, group+" ") {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	fmt.Fprintln(w, "Commands:")
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, p := range paths {
		fmt.Fprintf(tw, "  %s %s\t%s\n", Name, p, commands[p].Short)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nRun '%s <command> --help' for a command's flags and an example.\n", Name)
	if group == "" {
		fmt.Fprint(w, `
Configuration (each value is looked up only when a command needs it):
  resource names   --registry-table, --state-table, --api-url, --*-queue-url flags,
                   else SNOWGATE_REGISTRY_TABLE, SNOWGATE_STATE_TABLE, SNOWGATE_API_URL, …,
                   else the outputs of the CloudFormation stack (--stack, SNOWGATE_STACK, default "snowgate")
  AWS              the SDK's usual settings: AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, …
                   (--region and --endpoint-url override them)
  output           --output text (default) or --output json on every command
`)
	}
}

// writeCommandHelp prints one command's synopsis, flags and example.
func writeCommandHelp(w io.Writer, cmd Command) {
	fmt.Fprintf(w, "%s %s — %s\n\nUsage:\n  %s %s %s\n", Name, cmd.Path, cmd.Short, Name, cmd.Path, cmd.Usage)
	if cmd.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.Long))
	}
	fs := flag.NewFlagSet(cmd.Path, flag.ContinueOnError)
	cmd.Flags(fs)
	if n := countFlags(fs); n > 0 {
		fmt.Fprintln(w, "\nFlags:")
		writeFlags(w, fs)
	}
	fmt.Fprintf(w, "\nExample:\n")
	for _, line := range strings.Split(strings.TrimSpace(cmd.Example), "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
	var g globalFlags
	gfs := flag.NewFlagSet("global", flag.ContinueOnError)
	g.register(gfs)
	fmt.Fprintln(w, "\nGlobal flags (every command):")
	writeFlags(w, gfs)
}

func countFlags(fs *flag.FlagSet) int {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n
}

func writeFlags(w io.Writer, fs *flag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if typ != "" {
			name += " " + typ
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		} else if f.DefValue == "0" && typ == "int" {
			usage += " (default 0)"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, usage)
	})
	_ = tw.Flush()
}
