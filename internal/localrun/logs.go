package localrun

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Logs merges the log lines of several programs into one stream, each line
// labelled with the program's name: readable on a terminal, JSON lines (one
// object per line, with a "process" field) for anything else. The label has
// a key of its own because the programs' lines often carry a "function".
type Logs struct {
	mu    sync.Mutex
	w     io.Writer
	human bool
	width int
}

// NewLogs writes to w, for people when human is true.
func NewLogs(w io.Writer, human bool) *Logs {
	return &Logs{w: w, human: human, width: 10}
}

// Align makes room for names in the label column, so that lines line up
// from the first one on.
func (l *Logs) Align(names ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range names {
		l.width = max(l.width, len(n))
	}
}

// Writer returns a writer for one program's output; it labels every complete
// line with name. Close flushes a last unterminated line.
func (l *Logs) Writer(name string) io.WriteCloser {
	l.mu.Lock()
	if len(name) > l.width {
		l.width = len(name)
	}
	l.mu.Unlock()
	return &lineWriter{logs: l, name: name}
}

type lineWriter struct {
	logs *Logs
	name string
	mu   sync.Mutex
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.logs.line(w.name, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.logs.line(w.name, w.buf)
		w.buf = nil
	}
	return nil
}

func (l *Logs) line(name string, line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []byte
	if l.human {
		out = l.humanLine(name, line)
	} else {
		out = jsonLine(name, line)
	}
	_, _ = l.w.Write(out)
}

// jsonLine adds the program's name to a JSON log object, or wraps a plain
// text line (a panic trace, say) in one.
func jsonLine(name string, line []byte) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(line, &obj) != nil || obj == nil {
		out, _ := json.Marshal(struct {
			Time    string `json:"time"`
			Level   string `json:"level"`
			Process string `json:"process"`
			Msg     string `json:"msg"`
		}{time.Now().UTC().Format(time.RFC3339Nano), "INFO", name, string(line)})
		return append(out, '\n')
	}
	fn, _ := json.Marshal(name)
	// Keep the program's own bytes (and key order): insert after "{".
	trimmed := bytes.TrimSpace(line)
	var b bytes.Buffer
	b.WriteString(`{"process":`)
	b.Write(fn)
	if len(obj) > 0 {
		b.WriteByte(',')
	}
	b.Write(bytes.TrimSpace(trimmed[1:]))
	b.WriteByte('\n')
	return b.Bytes()
}

// humanLine renders a slog JSON line as "15:04:05.000 name  LEVEL msg k=v";
// l.mu is held.
func (l *Logs) humanLine(name string, line []byte) []byte {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if dec.Decode(&obj) != nil || obj == nil {
		return fmt.Appendf(nil, "%s %-*s %s\n", time.Now().Format("15:04:05.000"), l.width, name, line)
	}
	ts := time.Now()
	if s, ok := obj["time"].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			ts = t
		}
	}
	level, _ := obj["level"].(string)
	msg, _ := obj["msg"].(string)
	// CloudWatch embedded metric lines: the values, without the schema.
	if _, ok := obj["_aws"]; ok && level == "" {
		delete(obj, "_aws")
		level, msg = "INFO", "metrics"
	}
	delete(obj, "time")
	delete(obj, "level")
	delete(obj, "msg")
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-*s %-5s %s", ts.Local().Format("15:04:05.000"), l.width, name, level, msg)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, humanValue(obj[k]))
	}
	b.WriteByte('\n')
	return []byte(b.String())
}

func humanValue(v any) string {
	switch v := v.(type) {
	case string:
		if strings.ContainsAny(v, " \t\"=") || v == "" {
			return fmt.Sprintf("%q", v)
		}
		return v
	case json.Number:
		return v.String()
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}
