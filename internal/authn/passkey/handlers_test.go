package passkey

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/authn/account"
)

var (
	asAlice      = map[string]string{"X-Test-User": "alice", "X-Test-MFA": "1"}
	asBob        = map[string]string{"X-Test-User": "bob", "X-Test-MFA": "1"}
	alicePending = map[string]string{"X-Test-Pending": "alice"}
	bobPending   = map[string]string{"X-Test-Pending": "bob"}
)

func TestRegisterStoresADiscoverableVerifiedCredential(t *testing.T) {
	r := newRig(t)
	opts, _ := r.begin("/passkey/register/begin", asAlice)
	var cc protocol.CredentialCreation
	if err := json.Unmarshal(opts, &cc); err != nil {
		t.Fatal(err)
	}
	sel := cc.Response.AuthenticatorSelection
	got := []string{string(sel.AuthenticatorAttachment), string(sel.ResidentKey), string(sel.UserVerification), cc.Response.RelyingParty.ID}
	if diff := cmp.Diff([]string{"platform", "required", "required", "phivault.test"}, got); diff != "" {
		t.Errorf("creation options (-want +got):\n%s", diff)
	}
	k := newSoftKey(t, origin)
	r.register("alice", k)
	stored := r.dir.passkeys("alice")
	if len(stored) != 1 {
		t.Fatalf("stored %d passkeys, want 1", len(stored))
	}
	var c webauthn.Credential
	if err := json.Unmarshal(stored[0], &c); err != nil {
		t.Fatal(err)
	}
	if string(c.ID) != string(k.id) || !c.Flags.UserVerified {
		t.Errorf("stored credential id %x uv %v, want %x uv true", c.ID, c.Flags.UserVerified, k.id)
	}
	if e := r.audit.last(); e.Interaction != "passkey-register" || e.UserID != "alice" {
		t.Errorf("audit %+v", e)
	}
	// The same authenticator is excluded next time, and refused if it tries.
	withMFA := map[string]string{"X-Test-User": "alice", "X-Test-MFA": "1"}
	opts, cookie := r.begin("/passkey/register/begin", withMFA)
	if !strings.Contains(string(opts), b64(k.id)) {
		t.Errorf("second registration does not exclude the first passkey: %s", opts)
	}
	if code, _, _ := r.do(call{path: "/passkey/register/finish", body: string(k.create(opts)), cookie: cookie, hdr: withMFA}); code != http.StatusConflict {
		t.Errorf("registering the same passkey twice: %d, want 409", code)
	}
	if n := len(r.dir.passkeys("alice")); n != 1 {
		t.Errorf("stored %d passkeys, want 1", n)
	}
}

func TestLogin(t *testing.T) {
	for _, tc := range []struct {
		name, method string
		hdr          map[string]string
	}{
		{"passwordless", "passkey", nil},
		{"second factor", "password+passkey", alicePending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			k := newSoftKey(t, origin)
			r.register("alice", k)
			opts, cookie := r.begin("/passkey/login/begin", tc.hdr)
			code, body, _ := r.do(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie, hdr: tc.hdr})
			if code != http.StatusOK || !strings.Contains(string(body), `"/console/"`) {
				t.Fatalf("login finish: %d %s", code, body)
			}
			if diff := cmp.Diff([]string{"alice " + tc.method}, r.sess.completed); diff != "" {
				t.Errorf("completed logins (-want +got):\n%s", diff)
			}
			var c webauthn.Credential
			json.Unmarshal(r.dir.passkeys("alice")[0], &c)
			if c.Authenticator.SignCount != 1 {
				t.Errorf("stored counter %d, want 1", c.Authenticator.SignCount)
			}
		})
	}
}

// refused runs one failing finish and checks that nothing signed in and
// no passkey was added.
func (r *rig) refused(c call, want int) []byte {
	r.t.Helper()
	before := len(r.dir.passkeys("alice")) + len(r.dir.passkeys("bob"))
	code, body, _ := r.do(c)
	if code != want {
		r.t.Errorf("%s: status %d (%s), want %d", c.path, code, body, want)
	}
	if !json.Valid(body) || !strings.Contains(string(body), `"error"`) {
		r.t.Errorf("%s: body %s is not a JSON error", c.path, body)
	}
	if len(r.sess.completed) != 0 {
		r.t.Errorf("%s: signed in %v", c.path, r.sess.completed)
	}
	if after := len(r.dir.passkeys("alice")) + len(r.dir.passkeys("bob")); after != before {
		r.t.Errorf("%s: passkeys %d -> %d", c.path, before, after)
	}
	return body
}

func TestFinishErrors(t *testing.T) {
	tests := []struct {
		name string
		run  func(r *rig, k *softKey)
	}{
		{"bad JSON at register", func(r *rig, k *softKey) {
			_, cookie := r.begin("/passkey/register/begin", asBob)
			r.refused(call{path: "/passkey/register/finish", body: `{"id":`, cookie: cookie, hdr: asBob}, 400)
		}},
		{"valid JSON, not a credential", func(r *rig, k *softKey) {
			_, cookie := r.begin("/passkey/login/begin", nil)
			r.refused(call{path: "/passkey/login/finish", body: `{"id":"x","type":"public-key"}`, cookie: cookie}, 400)
		}},
		{"bad JSON at login", func(r *rig, k *softKey) {
			_, cookie := r.begin("/passkey/login/begin", nil)
			r.refused(call{path: "/passkey/login/finish", body: `not json`, cookie: cookie}, 400)
		}},
		{"no ceremony cookie", func(r *rig, k *softKey) {
			opts, _ := r.begin("/passkey/login/begin", nil)
			r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts))}, 400)
		}},
		{"forged ceremony cookie", func(r *rig, k *softKey) {
			opts, _ := r.begin("/passkey/login/begin", nil)
			r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: "AAAA"}, 400)
		}},
		{"reused challenge", func(r *rig, k *softKey) {
			opts, cookie := r.begin("/passkey/login/begin", nil)
			resp := string(k.get(opts))
			if code, body, _ := r.do(call{path: "/passkey/login/finish", body: resp, cookie: cookie}); code != 200 {
				t.Fatalf("first use: %d %s", code, body)
			}
			r.sess.completed = nil
			r.refused(call{path: "/passkey/login/finish", body: resp, cookie: cookie}, 400)
		}},
		{"challenge used after a failure", func(r *rig, k *softKey) {
			opts, cookie := r.begin("/passkey/login/begin", nil)
			r.refused(call{path: "/passkey/login/finish", body: `{}`, cookie: cookie}, 400)
			r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie}, 400)
		}},
		{"expired challenge", func(r *rig, k *softKey) {
			opts, cookie := r.begin("/passkey/login/begin", nil)
			r.now = r.now.Add(2*time.Minute + time.Second)
			r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie}, 400)
		}},
		{"registration finished by another user", func(r *rig, k *softKey) {
			opts, cookie := r.begin("/passkey/register/begin", asAlice)
			body := r.refused(call{path: "/passkey/register/finish", body: string(newSoftKey(t, origin).create(opts)), cookie: cookie, hdr: asBob}, 400)
			wantWrongUser(t, body)
		}},
		{"second factor finished by another pending login", func(r *rig, k *softKey) {
			opts, cookie := r.begin("/passkey/login/begin", alicePending)
			body := r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie, hdr: bobPending}, 400)
			wantWrongUser(t, body)
			if e := r.audit.last(); e.Interaction != "login-failed" || e.UserID != "alice" {
				t.Errorf("audit %+v", e)
			}
		}},
		{"login challenge used to register", func(r *rig, k *softKey) {
			_, cookie := r.begin("/passkey/login/begin", nil)
			body := r.refused(call{path: "/passkey/register/finish", body: `{}`, cookie: cookie, hdr: asAlice}, 400)
			wantWrongUser(t, body)
		}},
		{"passwordless passkey of another user than the pending login", func(r *rig, k *softKey) {
			bobKey := newSoftKey(t, origin)
			r.register("bob", bobKey)
			opts, cookie := r.begin("/passkey/login/begin", nil)
			body := r.refused(call{path: "/passkey/login/finish", body: string(bobKey.get(opts)), cookie: cookie, hdr: alicePending}, 400)
			wantWrongUser(t, body)
		}},
		{"another user's passkey as second factor", func(r *rig, k *softKey) {
			bobKey := newSoftKey(t, origin)
			r.register("bob", bobKey)
			opts, cookie := r.begin("/passkey/login/begin", alicePending)
			r.refused(call{path: "/passkey/login/finish", body: string(bobKey.get(opts)), cookie: cookie, hdr: alicePending}, 400)
		}},
		{"no user verification", func(r *rig, k *softKey) {
			opts, cookie := r.begin("/passkey/login/begin", nil)
			k.noUV = true
			r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie}, 400)
			if r.sess.fails != 0 {
				t.Errorf("a passwordless failure counted against a pending login")
			}
		}},
		{"a refused second factor counts as a wrong one", func(r *rig, k *softKey) {
			opts, cookie := r.begin("/passkey/login/begin", alicePending)
			k.noUV = true
			r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie, hdr: alicePending}, 400)
			if r.sess.fails != 1 {
				t.Errorf("Fail called %d times, want 1", r.sess.fails)
			}
		}},
		{"another origin in client data", func(r *rig, k *softKey) {
			opts, cookie := r.begin("/passkey/login/begin", nil)
			k.origin = "https://evil.test"
			r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie}, 400)
		}},
		{"unknown user handle", func(r *rig, k *softKey) {
			opts, cookie := r.begin("/passkey/login/begin", nil)
			k.handle = []byte("nobody-has-this-handle")
			r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie}, 400)
		}},
		{"disabled account", func(r *rig, k *softKey) {
			opts, cookie := r.begin("/passkey/login/begin", nil)
			a := r.dir.accts["alice"]
			a.Disabled = true
			r.dir.accts["alice"] = a
			r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie}, 400)
		}},
		{"body too large", func(r *rig, k *softKey) {
			_, cookie := r.begin("/passkey/login/begin", nil)
			r.refused(call{path: "/passkey/login/finish", body: `"` + strings.Repeat("a", maxBody) + `"`, cookie: cookie}, 413)
		}},
		{"audit unavailable for a refused login", func(r *rig, k *softKey) {
			opts, cookie := r.begin("/passkey/login/begin", nil)
			r.audit.fail = true
			k.noUV = true
			r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie}, 503)
		}},
		{"audit unavailable for a sign-in", func(r *rig, k *softKey) {
			opts, cookie := r.begin("/passkey/login/begin", nil)
			r.sess.failAudit = true
			r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie}, 503)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			k := newSoftKey(t, origin)
			r.register("alice", k)
			tc.run(r, k)
		})
	}
}

func TestRegisterElevatesASessionWithoutSecondFactor(t *testing.T) {
	r := newRig(t)
	k := newSoftKey(t, origin)
	noMFA := map[string]string{"X-Test-User": "alice"}
	opts, cookie := r.begin("/passkey/register/begin", noMFA)
	if code, body, _ := r.do(call{path: "/passkey/register/finish", body: string(k.create(opts)), cookie: cookie, hdr: noMFA}); code != http.StatusCreated {
		t.Fatalf("register: %d %s", code, body)
	}
	r.register("alice", newSoftKey(t, origin)) // a session with MFA is left alone
	if diff := cmp.Diff([]string{"alice password+passkey"}, r.sess.elevated); diff != "" {
		t.Errorf("elevations (-want +got):\n%s", diff)
	}
}

func TestStepUp(t *testing.T) {
	r := newRig(t)
	k := newSoftKey(t, origin)
	r.register("alice", k)
	opts, cookie := r.begin("/passkey/stepup/begin", asAlice)
	if code, body, _ := r.do(call{path: "/passkey/stepup/finish", body: string(k.get(opts)), cookie: cookie, hdr: asAlice}); code != http.StatusOK {
		t.Fatalf("step-up: %d %s", code, body)
	}
	if diff := cmp.Diff([]string{"alice passkey"}, r.sess.stepups); diff != "" {
		t.Errorf("step-ups (-want +got):\n%s", diff)
	}
	if e := r.audit.last(); e.Interaction != "step-up" || e.Outcome != "0" || e.UserID != "alice" {
		t.Errorf("audit %+v", e)
	}
	r.sess.stepups = nil
	for _, tc := range []struct {
		name  string
		begin map[string]string
		path  string
		hdr   map[string]string
		want  int
	}{
		{"without a session", asAlice, "/passkey/stepup/finish", nil, 401},
		{"another user's session", asAlice, "/passkey/stepup/finish", asBob, 400},
		{"a login challenge", nil, "/passkey/stepup/finish", asAlice, 400},
		{"a step-up challenge used to sign in", asAlice, "/passkey/login/finish", nil, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/passkey/login/begin"
			if tc.begin != nil {
				path = "/passkey/stepup/begin"
			}
			opts, cookie := r.begin(path, tc.begin)
			r.refused(call{path: tc.path, body: string(k.get(opts)), cookie: cookie, hdr: tc.hdr}, tc.want)
			if len(r.sess.stepups) != 0 {
				t.Errorf("stepped up: %v", r.sess.stepups)
			}
		})
	}
	if code, _, _ := r.do(call{path: "/passkey/stepup/begin", hdr: asBob}); code != 400 {
		t.Errorf("step-up for a user without passkeys: %d, want 400", code)
	}
}

func wantWrongUser(t *testing.T, body []byte) {
	t.Helper()
	if !strings.Contains(string(body), "another user") {
		t.Errorf("message %s does not say the request belongs to another user or ceremony", body)
	}
}

func TestClonedAuthenticatorIsRefused(t *testing.T) {
	r := newRig(t)
	k := newSoftKey(t, origin)
	r.register("alice", k)
	k.count = 10
	opts, cookie := r.begin("/passkey/login/begin", nil)
	if code, body, _ := r.do(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie}); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	r.sess.completed = nil
	for _, count := range []uint32{4, 10} { // backwards, and standing still
		k.count = count
		opts, cookie = r.begin("/passkey/login/begin", nil)
		body := r.refused(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie}, 403)
		if !strings.Contains(string(body), "cloned") {
			t.Errorf("message %s does not say why", body)
		}
		e := r.audit.last()
		if e.Interaction != "login-failed" || e.UserID != "alice" || !strings.Contains(e.OutcomeDesc, "cloned authenticator") {
			t.Errorf("audit event %+v does not name the clone warning", e)
		}
	}
	var c webauthn.Credential
	json.Unmarshal(r.dir.passkeys("alice")[0], &c)
	if c.Authenticator.SignCount != 11 || c.Authenticator.CloneWarning {
		t.Errorf("stored counter %d (clone warning %v), want 11 unchanged", c.Authenticator.SignCount, c.Authenticator.CloneWarning)
	}
}

func TestBeginErrors(t *testing.T) {
	r := newRig(t)
	r.dir.accts["dave"] = account.Account{ID: "dave"}
	r.register("dave", newSoftKey(t, origin)) // registers with X-Test-MFA: 1
	tests := []struct {
		name string
		c    call
		want int
	}{
		{"register without a session", call{path: "/passkey/register/begin"}, 401},
		{"register with only a pending login", call{path: "/passkey/register/begin", hdr: alicePending}, 401},
		{"second factor without a passkey", call{path: "/passkey/login/begin", hdr: bobPending}, 400},
		{"disabled account", call{path: "/passkey/register/begin", hdr: map[string]string{"X-Test-User": "carol"}}, 401},
		{"another passkey without a second factor", call{path: "/passkey/register/begin", hdr: map[string]string{"X-Test-User": "dave"}}, 403},
		{"no CSRF header", call{path: "/passkey/login/begin", hdr: map[string]string{CSRFHeader: ""}}, 403},
		{"wrong CSRF header", call{path: "/passkey/login/begin", hdr: map[string]string{CSRFHeader: "yes"}}, 403},
		{"no origin", call{path: "/passkey/login/begin", hdr: map[string]string{"Origin": ""}}, 403},
		{"other origin", call{path: "/passkey/register/begin", hdr: map[string]string{"X-Test-User": "alice", "Origin": "https://evil.test"}}, 403},
		{"cross-site fetch", call{path: "/passkey/login/begin", hdr: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, cookie := r.do(tc.c)
			if code != tc.want || cookie != "" {
				t.Errorf("status %d cookie %q (%s), want %d and no cookie", code, cookie, body, tc.want)
			}
		})
	}
	if len(r.svc.challenges.m) != 0 {
		t.Errorf("%d challenges kept for refused requests", len(r.svc.challenges.m))
	}
}

func TestChallengesPerSource(t *testing.T) {
	r := newRig(t)
	for i := range maxPerSource {
		if code, body, _ := r.do(call{path: "/passkey/login/begin"}); code != 200 {
			t.Fatalf("begin %d: %d %s", i, code, body)
		}
	}
	if code, _, _ := r.do(call{path: "/passkey/login/begin"}); code != 503 {
		t.Errorf("begin past the per-source limit: %d, want 503", code)
	}
	r.now = r.now.Add(2 * time.Minute) // the old ones expire
	if code, _, _ := r.do(call{path: "/passkey/login/begin"}); code != 200 {
		t.Errorf("begin after expiry: %d, want 200", code)
	}
	if n := len(r.svc.challenges.m); n != 1 {
		t.Errorf("%d challenges kept, want 1", n)
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{}.Validate()
	for _, want := range []string{"RPID", "RPName", "origin", "Directory"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}

func FuzzLoginFinish(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":""}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := newRig(t)
		r.register("alice", newSoftKey(t, origin))
		for _, hdr := range []map[string]string{nil, alicePending} {
			_, _, cookie := r.do(call{path: "/passkey/login/begin", hdr: hdr})
			code, resp, _ := r.do(call{path: "/passkey/login/finish", body: string(body), cookie: cookie, hdr: hdr})
			if code < 400 || code >= 500 {
				t.Fatalf("status %d (%s), want 4xx", code, resp)
			}
		}
		if len(r.sess.completed) != 0 {
			t.Fatalf("signed in: %v", r.sess.completed)
		}
	})
}

func FuzzRegisterFinish(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := newRig(t)
		_, _, cookie := r.do(call{path: "/passkey/register/begin", hdr: asAlice})
		code, resp, _ := r.do(call{path: "/passkey/register/finish", body: string(body), cookie: cookie, hdr: asAlice})
		if code < 400 || code >= 500 {
			t.Fatalf("status %d (%s), want 4xx", code, resp)
		}
		if n := len(r.dir.passkeys("alice")); n != 0 {
			t.Fatalf("stored %d passkeys", n)
		}
	})
}
