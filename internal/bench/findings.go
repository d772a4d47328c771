package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/snowgate/snowgate/internal/businessrule"
	"github.com/snowgate/snowgate/internal/localrun"
)

// simOutboundFailed is the simulator's log message for a webhook call that
// got no answer.
const simOutboundFailed = "outbound call failed"

// findings are what the system's log lines say about a measurement.
type findings struct {
	// failed counts the webhook calls that got no answer, by reason.
	failed map[string]int
	// errs counts the other warnings and errors by program and message.
	errs map[string]int
	// accepted are the records ingest accepted a webhook of (202).
	accepted map[string]bool
}

// logFindings reads the system's log lines written after offset from.
func (s *System) logFindings(from int64) findings {
	fd := findings{failed: map[string]int{}, errs: map[string]int{}, accepted: map[string]bool{}}
	f, err := os.Open(s.logPath)
	if err != nil {
		fd.errs["reading the log: "+err.Error()]++
		return fd
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		fd.errs["reading the log: "+err.Error()]++
		return fd
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Process string `json:"process"`
			Level   string `json:"level"`
			Msg     string `json:"msg"`
			Error   string `json:"error"`
			Outcome string `json:"outcome"`
			SysID   string `json:"sys_id"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch {
		case line.Msg == simOutboundFailed:
			fd.failed[OutboundReason(line.Error)]++
		case line.Msg == ingestLogMsg && program(line.Process) == localrun.Ingest && line.Outcome == ingestAccepted:
			fd.accepted[line.SysID] = true
		case line.Level == "WARN" || line.Level == "ERROR":
			fd.errs[fmt.Sprintf("%s %s: %s", line.Level, program(line.Process), line.Msg)]++
		}
	}
	return fd
}

// Ingest's log line per request, and its outcome when it sent the message.
const (
	ingestLogMsg   = "ingest"
	ingestAccepted = "accepted"
)

// program is a process label without the system's prefix and the
// execution environment's number: "bench-dev-ingest#3" is "ingest".
func program(label string) string {
	label, _, _ = strings.Cut(label, "#")
	return strings.TrimPrefix(label, systemPrefix)
}

var addr = regexp.MustCompile(`(https?://)?127\.0\.0\.1:\d+\S*`)

// OutboundReason sorts the error of a webhook call that got no answer into
// what happened.
func OutboundReason(err string) string {
	switch {
	case strings.Contains(err, "deadline exceeded") || strings.Contains(err, "Timeout"):
		return fmt.Sprintf("no answer within the Business Rule's %d s timeout", businessrule.HTTPTimeoutMillis/1000)
	case strings.Contains(err, "connection refused"):
		return "connection refused"
	case strings.Contains(err, "connection reset") || strings.Contains(err, "EOF") || strings.Contains(err, "broken pipe"):
		return "connection closed without an answer"
	}
	return addr.ReplaceAllString(err, "<api>")
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
