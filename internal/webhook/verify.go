package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Verification outcomes. Callers at the edge map all of them to one and the
// same rejection, so that a client cannot tell which check failed.
var (
	// ErrBadSecret: the static secret is missing or matches no accepted hash.
	ErrBadSecret = errors.New("bad webhook secret")
	// ErrNoSignature: a Standard Webhooks header is missing or malformed.
	ErrNoSignature = errors.New("missing webhook signature headers")
	// ErrTimestamp: webhook-timestamp is outside the tolerance (replay).
	ErrTimestamp = errors.New("webhook timestamp outside tolerance")
	// ErrBadSignature: no v1 signature matches any accepted key.
	ErrBadSignature = errors.New("bad webhook signature")
)

// DefaultTolerance is how far webhook-timestamp may be from now, either way,
// as in Standard Webhooks.
const DefaultTolerance = 5 * time.Minute

// Digest is the SHA-256 of a static secret: the decoded form of a stored
// hash, compared in constant time.
type Digest [sha256.Size]byte

// ParseDigest decodes a stored hash (hex SHA-256, as HashSecret returns).
func ParseDigest(hash string) (Digest, error) {
	var d Digest
	if hex.DecodedLen(len(hash)) != len(d) {
		return Digest{}, errors.New("secret hash is not hex SHA-256")
	}
	if _, err := hex.Decode(d[:], []byte(hash)); err != nil {
		return Digest{}, errors.New("secret hash is not hex SHA-256")
	}
	return d, nil
}

// VerifySecret checks a static secret against the accepted digests (the
// current one and, during a rotation, the previous one). Every digest is
// compared, in constant time, so the time taken does not depend on which
// one matched or how much of it did. No accepted digest means no match.
func VerifySecret(secret string, accepted []Digest) error {
	if secret == "" || len(accepted) == 0 {
		return ErrBadSecret
	}
	sum := sha256.Sum256([]byte(secret))
	match := 0
	for i := range accepted {
		match |= subtle.ConstantTimeCompare(sum[:], accepted[i][:])
	}
	if match != 1 {
		return ErrBadSecret
	}
	return nil
}

// SignedHeaders are the three Standard Webhooks headers of a request.
type SignedHeaders struct {
	ID        string // webhook-id
	Timestamp string // webhook-timestamp, Unix seconds
	Signature string // webhook-signature: space-separated "v1,<base64>"
}

// CheckTimestamp is the cheap part of signature verification: the headers
// are present and the timestamp is within tolerance of now. Callers run it
// before fetching any key, so a stale or unsigned request costs nothing.
func CheckTimestamp(h SignedHeaders, now time.Time, tolerance time.Duration) error {
	if h.ID == "" || h.Timestamp == "" || h.Signature == "" {
		return ErrNoSignature
	}
	ts, err := strconv.ParseInt(h.Timestamp, 10, 64)
	if err != nil {
		return ErrNoSignature
	}
	// Compared in seconds: converting an attacker's huge value to a
	// time.Duration would overflow.
	diff := now.Unix() - ts
	limit := int64(tolerance / time.Second)
	if diff > limit || diff < -limit {
		return ErrTimestamp
	}
	return nil
}

// VerifySignature checks a Standard Webhooks request: the timestamp is
// within tolerance and one of the v1 signatures in the header is the
// HMAC-SHA256 of "<id>.<timestamp>.<body>" under one of the keys. Several
// signatures (sender-side rotation) and several keys (receiver-side grace)
// are allowed; anything else, including no key at all, is a rejection.
func VerifySignature(keys [][]byte, h SignedHeaders, body []byte, now time.Time, tolerance time.Duration) error {
	if err := CheckTimestamp(h, now, tolerance); err != nil {
		return err
	}
	// Room for the longest signature we decode (64 base64 characters), so a
	// malformed one can never write past the buffer.
	var sig [48]byte
	var want [sha256.Size]byte
	for _, key := range keys {
		if len(key) == 0 {
			continue // an empty key would accept anyone who knows it is empty
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(h.ID))
		m.Write([]byte{'.'})
		m.Write([]byte(h.Timestamp))
		m.Write([]byte{'.'})
		m.Write(body)
		m.Sum(want[:0])
		for part := range strings.FieldsSeq(h.Signature) {
			b64, ok := strings.CutPrefix(part, "v1,")
			if !ok || len(b64) > 64 {
				continue // other schemes (v1a) and garbage are not ours
			}
			n, err := base64.StdEncoding.Decode(sig[:], []byte(b64))
			if err != nil || n != len(want) {
				continue
			}
			if hmac.Equal(sig[:n], want[:]) {
				return nil
			}
		}
	}
	return ErrBadSignature
}
