package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// maxStdin bounds what is read from stdin for secrets.
const maxStdin = 64 << 10

// ReadSecrets reads one secret per label from stdin: prompted without echo
// on a terminal, else one per line (so `printf '%s\n' "$PW" | 2501 …` and
// here-documents work). Secrets never come from flags, which would leave
// them in shell history and process listings.
func (c *Call) ReadSecrets(labels ...string) ([]string, error) {
	if len(labels) == 0 {
		return nil, nil
	}
	if f, ok := c.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		out := make([]string, len(labels))
		for i, l := range labels {
			fmt.Fprintf(c.Stderr, "%s: ", l)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(c.Stderr)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", l, err)
			}
			if out[i] = string(b); out[i] == "" {
				return nil, Usagef("%s is empty", l)
			}
		}
		return out, nil
	}
	sc := bufio.NewScanner(io.LimitReader(c.Stdin, maxStdin))
	sc.Buffer(make([]byte, 0, 4096), maxStdin)
	var out []string
	for len(out) < len(labels) && sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			return nil, Usagef("%s on stdin is empty", labels[len(out)])
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	if len(out) < len(labels) {
		return nil, Usagef("stdin has no %s (give %s, one per line)", labels[len(out)], strings.Join(labels, " then "))
	}
	return out, nil
}
