package webhook

import (
	"errors"
	"testing"
)

func TestNewSecretHashes(t *testing.T) {
	s1, h1 := NewSecret()
	s2, _ := NewSecret()
	if s1 == s2 {
		t.Fatalf("NewSecret returned the same secret twice")
	}
	if len(s1) != 43 {
		t.Errorf("len(secret) = %d, want 43", len(s1))
	}
	if HashSecret(s1) != h1 {
		t.Errorf("HashSecret(secret) != hash from NewSecret")
	}
}

func TestSigningKey(t *testing.T) {
	k := NewSigningKey()
	raw, err := DecodeSigningKey(k)
	if err != nil || len(raw) != SecretBytes {
		t.Fatalf("DecodeSigningKey(%q) = %d bytes, %v", k, len(raw), err)
	}
	for _, bad := range []string{"", "whsec_", "abc", "whsec_!!!"} {
		if _, err := DecodeSigningKey(bad); !errors.Is(err, ErrBadSigningKey) {
			t.Errorf("DecodeSigningKey(%q) = %v, want ErrBadSigningKey", bad, err)
		}
	}
}

func TestSignKnownVector(t *testing.T) {
	// Standard Webhooks reference vector.
	key, err := DecodeSigningKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}
