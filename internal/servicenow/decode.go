package servicenow

import (
	"errors"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The fast path below decodes the Table API's usual answer,
// {"result":[{"field":"value",…},…]} or {"result":{…}}, with string values
// only. Decoding a page of 1 000 records through encoding/json into maps
// costs two allocations per field and most of a query's CPU; here a
// record's values share one string and field names are interned across the
// page. Anything else (another shape, a non-string value, bad JSON) makes
// it give up, and the caller decodes the body with encoding/json, which
// then has the last word on what the body means or why it is invalid.

// errSlowPath: the body is not in the shape the fast path handles.
var errSlowPath = errors.New("not a flat string result")

type fastDecoder struct {
	b    []byte
	i    int
	keys map[string]string
	// vals holds the current record's values back to back; one string
	// conversion at the end of the record backs all of them.
	vals    []byte
	entries []entry
}

type entry struct {
	key        string
	start, end int
}

// fastRecords decodes {"result":[…]}; ok is false when the body needs the
// slow path.
func fastRecords(body []byte) (recs []Record, ok bool) {
	d := fastDecoder{b: body, keys: map[string]string{}}
	if !d.openResult() || !d.lit('[') {
		return nil, false
	}
	recs = []Record{}
	d.ws()
	if !d.lit(']') {
		for {
			r, err := d.record()
			if err != nil {
				return nil, false
			}
			recs = append(recs, r)
			d.ws()
			if d.lit(',') {
				d.ws()
				continue
			}
			if !d.lit(']') {
				return nil, false
			}
			break
		}
	}
	if !d.closeResult() {
		return nil, false
	}
	return recs, true
}

// fastRecord decodes {"result":{…}}.
func fastRecord(body []byte) (Record, bool) {
	d := fastDecoder{b: body, keys: map[string]string{}}
	if !d.openResult() {
		return nil, false
	}
	r, err := d.record()
	if err != nil || !d.closeResult() {
		return nil, false
	}
	return r, true
}

// openResult reads `{"result":` and the whitespace after it.
func (d *fastDecoder) openResult() bool {
	d.ws()
	if !d.lit('{') {
		return false
	}
	d.ws()
	const key = `"result"`
	if len(d.b)-d.i < len(key) || string(d.b[d.i:d.i+len(key)]) != key {
		return false
	}
	d.i += len(key)
	d.ws()
	if !d.lit(':') {
		return false
	}
	d.ws()
	return true
}

// closeResult reads the closing brace and checks nothing follows.
func (d *fastDecoder) closeResult() bool {
	d.ws()
	if !d.lit('}') {
		return false
	}
	d.ws()
	return d.i == len(d.b)
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) lit(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// record reads one object whose values are all strings.
func (d *fastDecoder) record() (Record, error) {
	if !d.lit('{') {
		return nil, errSlowPath
	}
	d.vals, d.entries = d.vals[:0], d.entries[:0]
	d.ws()
	if !d.lit('}') {
		for {
			start := len(d.vals)
			if err := d.str(); err != nil {
				return nil, err
			}
			// The key was appended to vals like a value; intern it and
			// take it back out. The map lookup with a converted []byte
			// does not allocate.
			k, ok := d.keys[string(d.vals[start:])]
			if !ok {
				k = string(d.vals[start:])
				d.keys[k] = k
			}
			d.vals = d.vals[:start]
			d.ws()
			if !d.lit(':') {
				return nil, errSlowPath
			}
			d.ws()
			if err := d.str(); err != nil {
				return nil, err
			}
			d.entries = append(d.entries, entry{key: k, start: start, end: len(d.vals)})
			d.ws()
			if d.lit(',') {
				d.ws()
				continue
			}
			if !d.lit('}') {
				return nil, errSlowPath
			}
			break
		}
	}
	s := string(d.vals)
	r := make(Record, len(d.entries))
	for _, e := range d.entries {
		r[e.key] = s[e.start:e.end]
	}
	return r, nil
}

// str reads a JSON string and appends its value to vals, decoding escapes,
// surrogate pairs and invalid UTF-8 exactly as encoding/json does (an
// invalid byte or lone surrogate becomes U+FFFD).
func (d *fastDecoder) str() error {
	if !d.lit('"') {
		return errSlowPath
	}
	for d.i < len(d.b) {
		// Copy the run of plain bytes up to the next special one at once.
		start := d.i
		for d.i < len(d.b) {
			c := d.b[d.i]
			if c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
				break
			}
			d.i++
		}
		d.vals = append(d.vals, d.b[start:d.i]...)
		if d.i == len(d.b) {
			break
		}
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return nil
		case c < 0x20:
			return errSlowPath
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.b[d.i:])
			d.i += size
			d.vals = utf8.AppendRune(d.vals, r)
		default: // backslash
			if d.i+1 >= len(d.b) {
				return errSlowPath
			}
			e := d.b[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				d.vals = append(d.vals, e)
			case 'b':
				d.vals = append(d.vals, '\b')
			case 'f':
				d.vals = append(d.vals, '\f')
			case 'n':
				d.vals = append(d.vals, '\n')
			case 'r':
				d.vals = append(d.vals, '\r')
			case 't':
				d.vals = append(d.vals, '\t')
			case 'u':
				r := d.u4()
				if r < 0 {
					return errSlowPath
				}
				if utf16.IsSurrogate(r) {
					// A valid pair is consumed whole; anything else leaves
					// the lone half as U+FFFD and the rest to be read next.
					save := d.i
					if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
						d.i += 2
						if dec := utf16.DecodeRune(r, d.u4()); dec != unicode.ReplacementChar {
							d.vals = utf8.AppendRune(d.vals, dec)
							continue
						}
					}
					d.i = save
					r = unicode.ReplacementChar
				}
				d.vals = utf8.AppendRune(d.vals, r)
			default:
				return errSlowPath
			}
		}
	}
	return errSlowPath
}

// u4 reads the four hex digits of a \u escape; -1 when they are not.
func (d *fastDecoder) u4() rune {
	if len(d.b)-d.i < 4 {
		return -1
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	d.i += 4
	return r
}
