// Package webhook holds the shared secrets and signatures of webhook
// registrations: how they are generated (by the CLI), stored (as a hash or in
// Secrets Manager) and checked (by ingest).
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// SecretBytes is the entropy of a static secret and of an HMAC key.
const SecretBytes = 32

// SigningKeyPrefix marks an HMAC signing key, as in Standard Webhooks.
const SigningKeyPrefix = "whsec_"

// ErrBadSigningKey is returned for a signing key that is not whsec_<base64>.
var ErrBadSigningKey = errors.New("malformed signing key")

// NewSecret returns a new random static secret (base64url, 43 characters)
// and the hash to store. The secret itself is shown once and never stored.
func NewSecret() (secret, hash string) {
	b := make([]byte, SecretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret)
}

// HashSecret is the stored form of a static secret: hex SHA-256. The secret
// has 256 bits of entropy, so a fast hash cannot be brute-forced and keeps
// verification in microseconds.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewSigningKey returns a new HMAC signing key, "whsec_" + base64 of 32
// random bytes. The key is kept in Secrets Manager.
func NewSigningKey() string {
	b := make([]byte, SecretBytes)
	_, _ = rand.Read(b)
	return SigningKeyPrefix + base64.StdEncoding.EncodeToString(b)
}

// SigningKeyBase64 returns the base64 part of a signing key, the form
// ServiceNow's GlideCertificateEncryption.generateMac takes.
func SigningKeyBase64(key string) (string, error) {
	b64, ok := strings.CutPrefix(key, SigningKeyPrefix)
	if !ok {
		return "", ErrBadSigningKey
	}
	if _, err := base64.StdEncoding.DecodeString(b64); err != nil || b64 == "" {
		return "", ErrBadSigningKey
	}
	return b64, nil
}

// DecodeSigningKey returns the raw HMAC key bytes of a signing key.
func DecodeSigningKey(key string) ([]byte, error) {
	b64, err := SigningKeyBase64(key)
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(b64)
}

// Sign returns the Standard Webhooks signature "v1,<base64>" of a message:
// HMAC-SHA256 over "<id>.<timestamp>.<body>".
func Sign(key []byte, id, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}
