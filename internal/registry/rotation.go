package registry

import "time"

// Expired reports whether an entry with this expiry is no longer accepted
// at now. A zero expiry never expires.
func Expired(expires, now time.Time) bool {
	return !expires.IsZero() && !now.Before(expires)
}

// PruneExpired drops the webhook's secret hashes and signing keys whose
// grace period has ended and returns the dropped signing keys, whose
// secrets the caller deletes once the webhook is stored.
func PruneExpired(w *Webhook, now time.Time) []SigningKeyRef {
	w.SecretHashes = liveHashes(w.SecretHashes, now)
	var dropped []SigningKeyRef
	live := w.SigningKeys[:0:0]
	for _, k := range w.SigningKeys {
		if Expired(k.Expires, now) {
			dropped = append(dropped, k)
			continue
		}
		live = append(live, k)
	}
	w.SigningKeys = live
	return dropped
}

// RotateSecretHash makes hash the webhook's current static secret. The
// previous ones stay valid until now+grace (or their own earlier expiry);
// with no grace they stop at once.
func RotateSecretHash(w *Webhook, hash string, now time.Time, grace time.Duration) {
	until := now.Add(grace)
	for i := range w.SecretHashes {
		if e := w.SecretHashes[i].Expires; e.IsZero() || e.After(until) {
			w.SecretHashes[i].Expires = until
		}
	}
	w.SecretHashes = append([]SecretHash{{SHA256: hash}}, w.SecretHashes...)
}

// RotateSigningKey makes ref the webhook's current HMAC key, the first in
// the list; the previous keys stay valid until now+grace as in
// RotateSecretHash.
func RotateSigningKey(w *Webhook, ref SigningKeyRef, now time.Time, grace time.Duration) {
	until := now.Add(grace)
	for i := range w.SigningKeys {
		if e := w.SigningKeys[i].Expires; e.IsZero() || e.After(until) {
			w.SigningKeys[i].Expires = until
		}
	}
	w.SigningKeys = append([]SigningKeyRef{ref}, w.SigningKeys...)
}

func liveHashes(hs []SecretHash, now time.Time) []SecretHash {
	var out []SecretHash
	for _, h := range hs {
		if !Expired(h.Expires, now) {
			out = append(out, h)
		}
	}
	return out
}

func liveKeys(ks []SigningKeyRef, now time.Time) []SigningKeyRef {
	var out []SigningKeyRef
	for _, k := range ks {
		if !Expired(k.Expires, now) {
			out = append(out, k)
		}
	}
	return out
}
