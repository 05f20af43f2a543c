package passkey

import "testing"

// BenchmarkPasswordlessLogin measures a passwordless sign-in on the
// server side (begin, then finish: parsing, ECDSA P-256 verification,
// counter update) over the in-memory fakes, without storage. The
// authenticator's signing is excluded from the timing.
func BenchmarkPasswordlessLogin(b *testing.B) {
	r := newRig(b)
	k := newSoftKey(b, origin)
	r.register("alice", k)
	for b.Loop() {
		opts, cookie := r.begin("/passkey/login/begin", nil)
		b.StopTimer()
		resp := string(k.get(opts))
		r.sess.completed = r.sess.completed[:0]
		b.StartTimer()
		if code, body, _ := r.do(call{path: "/passkey/login/finish", body: resp, cookie: cookie}); code != 200 {
			b.Fatalf("finish: %d %s", code, body)
		}
	}
}
