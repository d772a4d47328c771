package cli

import "time"

// SetCompletionTimeout bounds id completions for a test; the returned
// function restores the default.
func SetCompletionTimeout(d time.Duration) (restore func()) {
	old := completionTimeout
	completionTimeout = d
	return func() { completionTimeout = old }
}
