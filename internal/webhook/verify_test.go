package webhook

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustDigest(t *testing.T, secret string) Digest {
	t.Helper()
	d, err := ParseDigest(HashSecret(secret))
	if err != nil {
		t.Fatalf("ParseDigest(HashSecret(%q)): %v", secret, err)
	}
	return d
}

func TestParseDigest(t *testing.T) {
	for _, bad := range []string{"", "abc", strings.Repeat("z", 64), strings.Repeat("a", 63), strings.Repeat("a", 66)} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) = nil error, want an error", bad)
		}
	}
}

func TestVerifySecret(t *testing.T) {
	current, previous := mustDigest(t, "current"), mustDigest(t, "previous")
	tests := []struct {
		name     string
		secret   string
		accepted []Digest
		want     error
	}{
		{"current", "current", []Digest{current}, nil},
		{"previous during grace", "previous", []Digest{current, previous}, nil},
		{"current during grace", "current", []Digest{current, previous}, nil},
		{"wrong", "wrong", []Digest{current, previous}, ErrBadSecret},
		{"empty", "", []Digest{current}, ErrBadSecret},
		{"no accepted digest", "current", nil, ErrBadSecret},
		// The zero digest is what a missing hash decodes to by mistake; it
		// must not match the empty secret.
		{"zero digest, empty secret", "", []Digest{{}}, ErrBadSecret},
		{"prefix of the secret", "curren", []Digest{current}, ErrBadSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifySecret(tt.secret, tt.accepted); !errors.Is(err, tt.want) {
				t.Errorf("VerifySecret(%q) = %v, want %v", tt.secret, err, tt.want)
			}
		})
	}
}

func TestVerifySignature(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	key, old := []byte("0123456789abcdef0123456789abcdef"), []byte("previous-key-previous-key-012345")
	body := []byte(`{"sys_id":"0123456789abcdef0123456789abcdef"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	good := Sign(key, "msg_1", ts, body)
	tests := []struct {
		name string
		keys [][]byte
		h    SignedHeaders
		body []byte
		now  time.Time
		want error
	}{
		{"valid", [][]byte{key}, SignedHeaders{"msg_1", ts, good}, body, now, nil},
		{"valid among several signatures", [][]byte{key}, SignedHeaders{"msg_1", ts, "v1,AAAA v1a,xyz " + good}, body, now, nil},
		{"old key in grace", [][]byte{key, old}, SignedHeaders{"msg_1", ts, Sign(old, "msg_1", ts, body)}, body, now, nil},
		{"4m59s late", [][]byte{key}, SignedHeaders{"msg_1", ts, good}, body, now.Add(4*time.Minute + 59*time.Second), nil},
		{"6 minutes late", [][]byte{key}, SignedHeaders{"msg_1", ts, good}, body, now.Add(6 * time.Minute), ErrTimestamp},
		{"6 minutes early", [][]byte{key}, SignedHeaders{"msg_1", ts, good}, body, now.Add(-6 * time.Minute), ErrTimestamp},
		{"huge timestamp", [][]byte{key}, SignedHeaders{"msg_1", "9223372036854775807", good}, body, now, ErrTimestamp},
		{"negative timestamp", [][]byte{key}, SignedHeaders{"msg_1", "-9223372036854775808", good}, body, now, ErrTimestamp},
		{"timestamp not a number", [][]byte{key}, SignedHeaders{"msg_1", "soon", good}, body, now, ErrNoSignature},
		{"missing id", [][]byte{key}, SignedHeaders{"", ts, good}, body, now, ErrNoSignature},
		{"missing signature", [][]byte{key}, SignedHeaders{"msg_1", ts, ""}, body, now, ErrNoSignature},
		{"other id", [][]byte{key}, SignedHeaders{"msg_2", ts, good}, body, now, ErrBadSignature},
		{"tampered body", [][]byte{key}, SignedHeaders{"msg_1", ts, good}, []byte(`{"sys_id":"ffffffffffffffffffffffffffffffff"}`), now, ErrBadSignature},
		{"unknown key", [][]byte{old}, SignedHeaders{"msg_1", ts, good}, body, now, ErrBadSignature},
		{"no keys", nil, SignedHeaders{"msg_1", ts, good}, body, now, ErrBadSignature},
		{"empty key", [][]byte{{}}, SignedHeaders{"msg_1", ts, Sign(nil, "msg_1", ts, body)}, body, now, ErrBadSignature},
		{"v1a scheme only", [][]byte{key}, SignedHeaders{"msg_1", ts, strings.Replace(good, "v1,", "v1a,", 1)}, body, now, ErrBadSignature},
		{"unpadded overlong base64", [][]byte{key}, SignedHeaders{"msg_1", ts, "v1," + strings.Repeat("A", 64)}, body, now, ErrBadSignature},
		{"truncated signature", [][]byte{key}, SignedHeaders{"msg_1", ts, good[:20]}, body, now, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifySignature(tt.keys, tt.h, tt.body, tt.now, DefaultTolerance)
			if !errors.Is(err, tt.want) {
				t.Errorf("VerifySignature(%+v) = %v, want %v", tt.h, err, tt.want)
			}
		})
	}
}

func FuzzVerifySignature(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	f.Add("msg_1", "1700000000", "v1,"+strings.Repeat("A", 43)+"=", []byte("{}"))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		err := VerifySignature([][]byte{key}, SignedHeaders{id, ts, sig}, body, time.Unix(1_700_000_000, 0), DefaultTolerance)
		if err == nil && !strings.Contains(sig, Sign(key, id, ts, body)[3:]) {
			t.Fatalf("accepted a signature that is not ours: %q", sig)
		}
	})
}
