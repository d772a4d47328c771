package servicenow

import (
	"bytes"
	"encoding/json"
	"mime"
	"strings"
)

// A 2xx status does not make an answer of the API. Three kinds of 2xx are
// not, and none may be read as a (partial) page or record:
//
//   - a body that is not JSON: a hibernating developer instance serves an
//     HTML page with 200 for every URL;
//   - ServiceNow's error envelope, {"error":{"message","detail"},
//     "status":"failure"}, as the whole body or beside a result;
//   - a body cut short with that error object appended, so that the whole
//     is not JSON: what a transaction cancelled by a transaction quota rule
//     sends once it has started writing its answer.

// transactionCancelled starts the message of a quota rule's cancellation.
const transactionCancelled = "transaction cancelled"

// checkAnswer returns an *AnswerError for a 2xx body that is not an answer
// of the API, nil otherwise. An empty body, and JSON without an error, are
// left to the caller, which knows whether it needs a body and of what
// shape.
func checkAnswer(status int, contentType string, body []byte) error {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return nil
	}
	if b[0] != '{' && b[0] != '[' {
		mt, _, _ := mime.ParseMediaType(contentType)
		return &AnswerError{Status: status, Kind: ErrNotAPI, ContentType: mt}
	}
	// Only a body that spells an error key or a failure status can hold
	// one: one fast scan on every answer, a parse only when they appear.
	if !bytes.Contains(b, []byte(`"error"`)) && !bytes.Contains(b, []byte(`"failure"`)) {
		return nil
	}
	if json.Valid(b) {
		return envelope(status, b)
	}
	if msg, detail, ok := appendedError(b); ok {
		return &AnswerError{Status: status, Kind: ErrTransactionCancelled, Message: msg, Detail: detail}
	}
	// Malformed JSON without an error object: the decoders report it.
	return nil
}

// envelope looks at the top-level keys of a valid JSON object for an
// error object or "status":"failure".
func envelope(status int, b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var (
		failed    bool
		msg, det  string
		haveError bool
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil
		}
		switch key {
		case "error":
			if m, d, ok := errorObject(raw); ok {
				msg, det, haveError = m, d, true
			}
		case "status":
			var s string
			if json.Unmarshal(raw, &s) == nil && strings.EqualFold(s, "failure") {
				failed = true
			}
		}
	}
	if !haveError && !failed {
		return nil
	}
	kind := ErrFailureAnswer
	if strings.HasPrefix(strings.ToLower(msg), transactionCancelled) {
		kind = ErrTransactionCancelled
	}
	return &AnswerError{Status: status, Kind: kind, Message: msg, Detail: det}
}

// errorObject reads an error value: the Table API's {"message","detail"},
// or a bare string. null and an empty object are no error.
func errorObject(raw json.RawMessage) (msg, detail string, ok bool) {
	var obj struct {
		Message string `json:"message"`
		Detail  string `json:"detail"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.Message, obj.Detail, obj.Message != "" || obj.Detail != ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, "", s != ""
	}
	return "", "", false
}

// appendedError finds an error object appended to a body that is not valid
// JSON: `"error": {…}` near the end, followed only by the rest of the
// envelope. The last few occurrences of the key are tried, last first.
func appendedError(b []byte) (msg, detail string, ok bool) {
	key := []byte(`"error"`)
	end := len(b)
	for tries := 0; tries < 8; tries++ {
		i := bytes.LastIndex(b[:end], key)
		if i < 0 {
			return "", "", false
		}
		end = i
		rest := bytes.TrimLeft(b[i+len(key):], " \t\r\n")
		if len(rest) == 0 || rest[0] != ':' {
			continue
		}
		rest = bytes.TrimLeft(rest[1:], " \t\r\n")
		if len(rest) == 0 || rest[0] != '{' {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(rest))
		var raw json.RawMessage
		if dec.Decode(&raw) != nil {
			continue
		}
		m, d, found := errorObject(raw)
		if !found {
			continue
		}
		// What follows the object closes the envelope: `,"status":…}` or `}`.
		after := bytes.TrimLeft(rest[dec.InputOffset():], " \t\r\n")
		if len(after) > 0 && after[0] != ',' && after[0] != '}' {
			continue
		}
		return m, d, true
	}
	return "", "", false
}
