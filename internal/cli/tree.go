package cli

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// annotationPath marks a cobra command built from a registered Command; its
// value is the Command's Path.
const annotationPath = "snowgate/path"

// tree builds the cobra command tree for one run from the registrations:
// every flag set is fresh, so the values a run parses are its own.
func (e Env) tree() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           Name,
		Short:         "the snowgate command line: ServiceNow gateways, webhooks and what the pipeline did",
		Version:       readBuildInfo().short(),
		SilenceErrors: true, // Run prints errors, in one line
		SilenceUsage:  true,
	}
	root.SetIn(e.Stdin)
	root.SetOut(e.Stdout)
	root.SetErr(e.Stderr)
	root.SetVersionTemplate(Name + " {{.Version}}\n")
	root.SetHelpFunc(func(c *cobra.Command, _ []string) { writeHelp(c.OutOrStdout(), c) })
	root.SetUsageFunc(func(c *cobra.Command) error { writeHelp(c.OutOrStderr(), c); return nil })
	root.SetHelpCommand(helpCommand())
	g.register(root.PersistentFlags())

	nodes := map[string]*cobra.Command{"": root}
	var node func(path string) *cobra.Command
	node = func(path string) *cobra.Command {
		if c, ok := nodes[path]; ok {
			return c
		}
		parent, name := "", path
		if i := strings.LastIndex(path, " "); i >= 0 {
			parent, name = path[:i], path[i+1:]
		}
		c := &cobra.Command{Use: name, Short: groups[path]}
		node(parent).AddCommand(c)
		nodes[path] = c
		return c
	}
	paths := make([]string, 0, len(commands))
	for p := range commands {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		e.leaf(node(p), commands[p], g)
	}
	// A command's own flag would silently shadow a global one.
	for _, p := range paths {
		nodes[p].LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if root.PersistentFlags().Lookup(f.Name) != nil {
				panic("cli: command " + p + " redefines the global flag --" + f.Name)
			}
		})
	}
	root.AddCommand(versionCommand(e, g), docsCommand())
	e.completeFlags(root, "", g)

	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			// Cobra's own descriptions, in the voice of the others.
			c.Short = "print the shell completion script for bash, zsh, fish or powershell"
			for _, sh := range c.Commands() {
				sh.Short = "print the completion script for " + sh.Name()
			}
		}
	}
	root.InitDefaultVersionFlag()
	walk(root, func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		c.SuggestionsMinimumDistance = 2
		if c.Runnable() {
			return
		}
		// A group: it runs only to say what is wrong with the command line.
		c.Args = groupArgs
		c.RunE = func(c *cobra.Command, _ []string) error {
			if !c.HasParent() {
				return c.Help()
			}
			var names []string
			for _, sub := range c.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			return &commandError{pathOf(c), Usagef("choose a command: %s (see %s help %s)", strings.Join(names, ", "), Name, pathOf(c))}
		}
	})
	return root
}

// leaf turns c into the registered command cmd.
func (e Env) leaf(c *cobra.Command, cmd Command, g *globalFlags) {
	c.Use = strings.TrimSpace(c.Name() + " " + cmd.Usage)
	c.Short = cmd.Short
	c.Long = strings.TrimSpace(cmd.Long)
	c.Example = strings.TrimSpace(cmd.Example)
	c.DisableFlagsInUseLine = true // Usage lists them
	c.Annotations = map[string]string{annotationPath: cmd.Path}
	action := cmd.Flags(c.Flags())
	c.Args = noArgs
	c.RunE = func(cc *cobra.Command, _ []string) error {
		call := &Call{Env: e, Command: cmd, global: *g}
		cc.Flags().Visit(func(f *pflag.Flag) { call.set = append(call.set, f.Name) })
		if err := call.global.validate(); err != nil {
			return &actionError{cmd.Path, err}
		}
		if err := action(cc.Context(), call); err != nil {
			return &actionError{cmd.Path, call.Explain(err)}
		}
		return nil
	}
	e.completeFlags(c, cmd.Path, g)
}

// noArgs rejects arguments: every value is given with a flag.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &commandError{pathOf(c), Usagef("unexpected argument %q (every value is given with a flag; see %s --help)", args[0], c.CommandPath())}
	}
	return nil
}

// groupArgs rejects words that name no command below a group.
func groupArgs(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return unknownCommand(c, args)
}

func unknownCommand(c *cobra.Command, args []string) error {
	words := append(strings.Fields(pathOf(c)), args...)
	hint := ""
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		hint = fmt.Sprintf("did you mean %q? ", strings.TrimSpace(pathOf(c)+" "+s[0]))
	}
	return &commandError{"", Usagef("unknown command %q (%ssee %s)", strings.Join(words, " "), hint, strings.TrimSpace(Name+" help "+pathOf(c)))}
}

// helpCommand is `2501 help [command]`; an unknown command is a usage error.
func helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "help about any command",
		Args:  cobra.ArbitraryArgs,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			target, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, sub := range target.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return &commandError{"", Usagef("unknown command %q (see %s help)", strings.Join(args, " "), Name)}
			}
			return target.Help()
		},
	}
}

// parseError rewrites what the parser rejected so that it names flags the
// way help prints them.
func parseError(c *cobra.Command, err error) error {
	if c == nil {
		return &commandError{"", Usagef("%v", err)}
	}
	msg := parseMessage(c, err)
	if ce, ok := msg.(*commandError); ok {
		return ce
	}
	return &commandError{pathOf(c), msg}
}

func parseMessage(c *cobra.Command, err error) error {
	if _, isLeaf := c.Annotations[annotationPath]; !isLeaf && c.HasSubCommands() && c.Flags().NArg() > 0 {
		// "infra gatway list --name x": the unknown word is the mistake.
		var ce *commandError
		if errors.As(unknownCommand(c, c.Flags().Args()), &ce) {
			return ce
		}
	}
	help := fmt.Sprintf("see %s --help", c.CommandPath())
	var (
		notExist *pflag.NotExistError
		invalid  *pflag.InvalidValueError
		needs    *pflag.ValueRequiredError
	)
	switch {
	case errors.As(err, &notExist):
		if s := notExist.GetSpecifiedShortnames(); s != "" {
			if c.Flags().Lookup(s) != nil {
				return Usagef("-%s is not a flag: write --%s", s, s)
			}
			return Usagef("-%s is not a flag of this command (%s)", s, help)
		}
		return Usagef("--%s is not a flag of this command (%s)", notExist.GetSpecifiedName(), help)
	case errors.As(err, &invalid):
		f := invalid.GetFlag()
		return Usagef("invalid value %q for --%s: %s", invalid.GetValue(), f.Name, wantOf(f))
	case errors.As(err, &needs):
		return Usagef("--%s needs a value (%s)", needs.GetSpecifiedName(), help)
	}
	return Usagef("%v", err)
}

// wantOf says what a flag's value must look like.
func wantOf(f *pflag.Flag) string {
	switch f.Value.Type() {
	case "bool":
		return "want true or false (--" + f.Name + "=false)"
	case "int", "int64", "uint":
		return "want a whole number"
	case "duration":
		return "want a duration such as 90s, 15m or 24h"
	}
	return "want a " + f.Value.Type()
}

// pathOf is a command's path below the root: "infra webhook create".
func pathOf(c *cobra.Command) string {
	if c == nil {
		return ""
	}
	return strings.TrimSpace(strings.TrimPrefix(c.CommandPath(), Name))
}

// walk calls fn for c and every command below it, depth first.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}
