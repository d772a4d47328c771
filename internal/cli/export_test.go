package cli

import (
	"slices"
	"sort"
	"time"
)

// CommandPaths lists the paths of every registered command, sorted, for
// the tests in package cli_test (which check that each one's JSON output
// has a schema and a test).
func CommandPaths() []string {
	paths := make([]string, 0, len(commands))
	for p := range commands {
		paths = append(paths, p)
	}
	// Commands of the tree itself that print JSON.
	paths = append(paths, "version")
	sort.Strings(paths)
	return paths
}

// SetCompletionTimeout bounds id completions for a test; the returned
// function restores the default.
func SetCompletionTimeout(d time.Duration) (restore func()) {
	old := completionTimeout
	completionTimeout = d
	return func() { completionTimeout = old }
}

// TicketStatuses are the statuses ticket list --status accepts.
func TicketStatuses() []string { return slices.Clone(ticketStatuses) }
