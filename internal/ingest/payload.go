package ingest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// payload is the body a Business Rule posts. Only sys_id is required; the
// rest are hints passed along to the processor, which trusts only what it
// reads from ServiceNow. "table" is accepted but the route's table is used.
// instance_name is the instance the rule ran on, compared with the
// gateway's (checkInstance); rules printed before it existed omit it.
type payload struct {
	SysID       string   `json:"sys_id"`
	Table       string   `json:"table"`
	Number      string   `json:"number"`
	SysModCount modCount `json:"sys_mod_count"`
	Operation   string   `json:"operation"`
	Instance    string   `json:"instance_name"`
}

// Hints longer than this are not a ServiceNow number, operation or
// instance name.
const maxHint = 64

// modCount is sys_mod_count as a JSON number or a numeric string (a
// Business Rule sends current.sys_mod_count, which GlideElement stringifies).
type modCount struct {
	n   int
	set bool
}

var errModCount = errors.New("sys_mod_count must be a non-negative integer")

func (c *modCount) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
		if len(b) == 0 {
			return nil // an empty GlideElement
		}
	}
	if len(b) == 0 || len(b) > 18 { // 18 digits cannot overflow an int64
		return errModCount
	}
	n := 0
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return errModCount
		}
		n = n*10 + int(ch-'0')
	}
	c.n, c.set = n, true
	return nil
}

func (c modCount) ptr() *int {
	if !c.set {
		return nil
	}
	n := c.n
	return &n
}

// parsePayload decodes and validates a body; a bad one yields the 400
// response to send.
func parsePayload(body []byte) (payload, *Response) {
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, errModCount):
			return p, badRequest(errModCount.Error())
		case errors.As(err, &te) && te.Field == "sys_id":
			return p, respBadSysID
		case errors.As(err, &te) && te.Field != "":
			return p, badRequest(te.Field + " has the wrong type")
		default:
			return p, respBadJSON
		}
	}
	sysID, ok := normalizeSysID(p.SysID)
	if !ok {
		return p, respBadSysID
	}
	p.SysID = sysID
	if len(p.Number) > maxHint || len(p.Operation) > maxHint || len(p.Instance) > maxHint {
		return p, badRequest("number, operation and instance_name must be at most " + strconv.Itoa(maxHint) + " characters")
	}
	return p, nil
}

// normalizeSysID checks for 32 hex digits and returns them in lower case,
// the form ServiceNow uses and the processor keys tickets by.
func normalizeSysID(s string) (string, bool) {
	if len(s) != 32 {
		return "", false
	}
	upper := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			upper = true
		default:
			return "", false
		}
	}
	if upper {
		b := []byte(s)
		for i, c := range b {
			if c >= 'A' && c <= 'F' {
				b[i] = c + ('a' - 'A')
			}
		}
		s = string(b)
	}
	return s, true
}

var (
	respBadJSON  = &Response{http.StatusBadRequest, jsonHeader, []byte(`{"error":"body must be a JSON object"}`)}
	respBadSysID = &Response{http.StatusBadRequest, jsonHeader, []byte(`{"error":"sys_id must be a string of 32 hex characters"}`)}
)

func badRequest(msg string) *Response {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	return &Response{http.StatusBadRequest, jsonHeader, b}
}
