package adminapi

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/authn/account"
)

// An administrator disables a user through the API; the user's bearer
// token, which authenticated the request before, fails the very next one.
func TestDisableEndsTokenAtOnce(t *testing.T) {
	e := newEnv(t)
	if r := e.do("phil", "GET", "/admin/v1/users", nil); r.status != http.StatusForbidden {
		t.Fatalf("physician before the disable: %d, want 403 (authenticated, not allowed)", r.status)
	}
	start := time.Now()
	r := e.do("ada", "POST", "/admin/v1/users/phil/disable", map[string]string{"reason": "left the clinic"})
	if r.status != http.StatusOK {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	var got account.Account
	if err := json.Unmarshal(r.body, &got); err != nil || !got.Disabled || got.ID != "phil" {
		t.Fatalf("disable answered %s (%v), want the disabled account", r.body, err)
	}
	r = e.do("phil", "GET", "/admin/v1/users", nil)
	took := time.Since(start)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("the disabled user's token on the next request: %d, want 401", r.status)
	}
	if r = e.do("phil", "GET", "/fhir/Patient", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("the disabled user's token on the FHIR API: %d, want 401", r.status)
	}
	t.Logf("disable to refusal of the token: %v (the issue allows 5 s)", took)
	if ev := e.lastEvent(`"user-disable"`, `"ada"`, "left the clinic"); ev == "" {
		t.Error("the disable is not in the audit log")
	}
	// Enabling lets the user sign in again, but the old token stays dead.
	if r := e.do("sam", "POST", "/admin/v1/users/phil/enable", nil); r.status != http.StatusOK {
		t.Fatalf("enable: %d %s", r.status, r.body)
	}
	if r := e.do("phil", "GET", "/admin/v1/users", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("a token ended by the disable after enable: %d, want 401", r.status)
	}
}

// Who may do what, decided by the default Cedar policies: administrators
// and security officers manage users; auditors and privacy officers read
// the review only; physicians nothing. A denial is 403, audited, and
// changes nothing.
func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	e.user(account.Account{ID: "victim", Roles: []string{"nurse"}})
	tests := []struct {
		user, method, path string
		body               any
		want               int
	}{
		{"phil", "GET", "/admin/v1/users", nil, 403},
		{"phil", "GET", "/admin/v1/access-review", nil, 403},
		{"phil", "POST", "/admin/v1/users/victim/disable", map[string]string{"reason": "x"}, 403},
		{"phil", "PUT", "/admin/v1/users/phil/roles", map[string]any{"roles": []string{"administrator"}}, 403},
		{"phil", "POST", "/admin/v1/users", map[string]any{"id": "mallory", "roles": []string{"administrator"}, "password": "horse-staple-battery-99"}, 403},
		{"aud", "GET", "/admin/v1/access-review", nil, 200},
		{"aud", "GET", "/admin/v1/users", nil, 403},
		{"aud", "POST", "/admin/v1/access-review/victim", map[string]any{"keep": []string{}}, 403},
		{"pia", "GET", "/admin/v1/access-review?format=csv", nil, 200},
		{"pia", "POST", "/admin/v1/users/victim/revoke", nil, 403},
		{"sam", "GET", "/admin/v1/users/victim", nil, 200},
		{"ada", "GET", "/admin/v1/access-review", nil, 200},
		{"", "GET", "/admin/v1/users", nil, 401},
	}
	before, _ := e.dir.Get(context.Background(), "victim")
	for _, tc := range tests {
		r := e.do(tc.user, tc.method, tc.path, tc.body)
		if r.status != tc.want {
			t.Errorf("%s %s %s: %d, want %d: %s", tc.user, tc.method, tc.path, r.status, tc.want, r.body)
			continue
		}
		if tc.want == 403 && !strings.HasPrefix(r.diagnostics(), "access denied") {
			t.Errorf("%s %s %s: a denial says %q", tc.user, tc.method, tc.path, r.diagnostics())
		}
	}
	after, _ := e.dir.Get(context.Background(), "victim")
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("denied calls changed the account (-before +after):\n%s", diff)
	}
	if _, err := e.dir.Get(context.Background(), "mallory"); err == nil {
		t.Error("a denied create created the account")
	}
	if e.lastEvent(`"user-disable"`, `"phil"`, `"outcome":"4"`, "access denied") == "" {
		t.Error("the physician's denied disable is not audited as a failure")
	}
	if e.lastEvent(`"login-failed"`, "bearer token") == "" {
		t.Error("the unauthenticated call is not audited")
	}
}

// The review in CSV, by ?format=csv and by Accept: text/csv, with the
// training recorded through the API; JSON otherwise. Each read is audited
// as "access-review".
func TestReviewCSVAndTraining(t *testing.T) {
	e := newEnv(t)
	today := e.clk.Now().Format(time.DateOnly)
	exp := e.clk.Now().AddDate(1, 0, 0).Format(time.DateOnly)
	r := e.do("ada", "POST", "/admin/v1/users/phil/training", map[string]string{"completed": today, "expires": exp})
	if r.status != http.StatusCreated {
		t.Fatalf("training: %d %s", r.status, r.body)
	}
	for _, how := range [][]string{{"/admin/v1/access-review?format=csv"}, {"/admin/v1/access-review", "Accept", "text/csv"}} {
		r := e.do("ada", "GET", how[0], nil, how[1:]...)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
			t.Fatalf("%v: %d %q", how, r.status, r.header.Get("Content-Type"))
		}
		recs, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
		if err != nil {
			t.Fatalf("%v: not CSV: %v", how, err)
		}
		if len(recs) != 6 || recs[0][0] != "id" || recs[0][9] != "training" {
			t.Fatalf("%v: %d records, header %v", how, len(recs), recs[0])
		}
		rows := map[string][]string{}
		for _, rec := range recs[1:] {
			rows[rec[0]] = rec
		}
		if got := []string{rows["phil"][2], rows["phil"][9], rows["phil"][10][:10]}; !cmp.Equal(got, []string{"physician", "current", exp}) {
			t.Errorf("%v: phil's roles, training, expiry: %v", how, got)
		}
		if got := []string{rows["ada"][7], rows["ada"][9]}; !cmp.Equal(got, []string{"true", "missing"}) {
			t.Errorf("%v: ada's privileged, training: %v", how, got)
		}
	}
	r = e.do("ada", "GET", "/admin/v1/access-review", nil)
	var js struct{ Rows []reviewRow }
	if err := json.Unmarshal(r.body, &js); err != nil || len(js.Rows) != 5 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON review: %d %v %s", r.status, err, r.body)
	}
	if js.Rows[2].ID != "phil" || js.Rows[2].Training != "current" {
		t.Errorf("JSON review row of phil: %+v", js.Rows[2])
	}
	if e.lastEvent(`"access-review"`, `"ada"`, `"outcome":"0"`) == "" {
		t.Error("the review read is not audited as access-review")
	}
	if r := e.do("ada", "GET", "/admin/v1/access-review?format=xml", nil); r.status != 400 {
		t.Errorf("format=xml: %d, want 400", r.status)
	}
}

// Recertification keeps the roles named and revokes the rest; a token
// minted with a revoked role stops working, and the review shows who
// reviewed.
func TestRecertifyRevokes(t *testing.T) {
	e := newEnv(t)
	if r := e.do("pia", "GET", "/admin/v1/access-review", nil); r.status != 200 {
		t.Fatalf("pia before: %d", r.status)
	}
	r := e.do("sam", "POST", "/admin/v1/access-review/pia", map[string]any{"keep": []string{"auditor"}})
	if r.status != 200 {
		t.Fatalf("recertify: %d %s", r.status, r.body)
	}
	if diff := cmp.Diff([]string{"auditor"}, e.roles("pia")); diff != "" {
		t.Errorf("roles after the review (-want +got):\n%s", diff)
	}
	if r := e.do("pia", "GET", "/admin/v1/access-review", nil); r.status != http.StatusUnauthorized {
		t.Errorf("the token holding the revoked role: %d, want 401", r.status)
	}
	rows, err := e.dir.Review(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if row.ID == "pia" && (row.ReviewedBy != "sam" || row.Reviewed.IsZero()) {
			t.Errorf("review row of pia: reviewed %v by %q", row.Reviewed, row.ReviewedBy)
		}
	}
	// Keeping a role not held is refused and changes nothing.
	if r := e.do("sam", "POST", "/admin/v1/access-review/pia", map[string]any{"keep": []string{"physician"}}); r.status != 400 {
		t.Errorf("keeping a role not held: %d, want 400", r.status)
	}
	if diff := cmp.Diff([]string{"auditor"}, e.roles("pia")); diff != "" {
		t.Errorf("a refused review changed the roles:\n%s", diff)
	}
}

// A console session may read without a CSRF token, but a change needs
// the session's token (X-CSRF-Token) and a recent sign-in (step-up).
func TestSessionCSRFAndStepUp(t *testing.T) {
	e := newEnv(t)
	cookie, csrf := e.signIn("ada")
	if r := e.do("", "GET", "/admin/v1/users", nil, "Cookie", cookie); r.status != 200 {
		t.Fatalf("session GET: %d %s", r.status, r.body)
	}
	body := map[string]string{"reason": "badge lost"}
	r := e.do("", "POST", "/admin/v1/users/phil/disable", body, "Cookie", cookie)
	if r.status != http.StatusForbidden || !strings.Contains(r.diagnostics(), "CSRF") {
		t.Fatalf("session POST without the CSRF token: %d %q, want 403", r.status, r.diagnostics())
	}
	r = e.do("", "POST", "/admin/v1/users/phil/disable", body, "Cookie", cookie, "X-CSRF-Token", "wrong"+csrf)
	if r.status != http.StatusForbidden {
		t.Fatalf("session POST with a wrong CSRF token: %d, want 403", r.status)
	}
	if r := e.do("phil", "GET", "/admin/v1/users", nil); r.status != http.StatusForbidden {
		t.Fatalf("refused session POSTs disabled the user anyway (%d)", r.status)
	}
	if e.lastEvent(`"user-disable"`, "cross-site request refused") == "" {
		t.Error("the refused cross-site request is not audited")
	}
	e.clk.Add(6 * time.Minute) // past the 5-minute step-up window, before the 15-minute idle timeout
	r = e.do("", "POST", "/admin/v1/users/phil/disable", body, "Cookie", cookie, "X-CSRF-Token", csrf)
	if r.status != http.StatusForbidden || !strings.Contains(r.diagnostics(), "re-authenticate") {
		t.Fatalf("session POST without a recent sign-in: %d %q, want 403 re-authenticate", r.status, r.diagnostics())
	}
	cookie, csrf = e.signIn("ada")
	if r := e.do("", "POST", "/admin/v1/users/phil/disable", body, "Cookie", cookie, "X-CSRF-Token", csrf); r.status != 200 {
		t.Fatalf("session POST with the token after signing in again: %d %s", r.status, r.body)
	}
	// A physician's session is refused by the policy, token or not.
	pc, pcsrf := e.signIn("aud")
	if r := e.do("", "POST", "/admin/v1/users/ada/revoke", nil, "Cookie", pc, "X-CSRF-Token", pcsrf); r.status != http.StatusForbidden {
		t.Errorf("auditor session revoking: %d, want 403", r.status)
	}
}

// Bad input gets 400 (or 404, 409, 413, 415) with a clear message and
// changes nothing; the password is never echoed or audited.
func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	before, err := e.dir.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	weak := "!qaz2wsx#edc"
	tests := []struct {
		method, path string
		body         any
		ctype        string
		want         int
		say          string
	}{
		{"POST", "/admin/v1/users", `{"id": "x", "roles": [`, "", 400, "ends early"},
		{"POST", "/admin/v1/users", `{"id": "x",, }`, "", 400, "malformed JSON"},
		{"POST", "/admin/v1/users", `{"id":"x","roles":["nurse"],"password":"horse-staple-battery-99","admin":true}`, "", 400, `unknown field "admin"`},
		{"POST", "/admin/v1/users", `{"id":"x","roles":["nurse"],"password":"horse-staple-battery-99"} {}`, "", 400, "one JSON object"},
		{"POST", "/admin/v1/users", map[string]any{"id": "x", "roles": []string{"nurse"}}, "", 400, "password"},
		{"POST", "/admin/v1/users", map[string]any{"id": "x", "roles": []string{"nurse"}, "password": weak}, "", 400, "common"},
		{"POST", "/admin/v1/users", map[string]any{"id": "x", "roles": []string{"wizard"}, "password": "horse-staple-battery-99"}, "", 400, "unknown role"},
		{"POST", "/admin/v1/users", map[string]any{"id": "x", "roles": []string{"administrator", "physician"}, "password": "horse-staple-battery-99"}, "", 400, "separate"},
		{"POST", "/admin/v1/users", map[string]any{"id": "../x", "roles": []string{"nurse"}, "password": "horse-staple-battery-99"}, "", 400, "user id"},
		{"POST", "/admin/v1/users", map[string]any{"id": "phil", "roles": []string{"nurse"}, "password": "horse-staple-battery-99"}, "", 409, "taken"},
		{"POST", "/admin/v1/users", `{"id":"x"}`, "text/plain", 415, "application/json"},
		{"POST", "/admin/v1/users", `{"name":"` + strings.Repeat("a", maxBody) + `"}`, "", 413, "larger"},
		{"POST", "/admin/v1/users/phil/disable", nil, "", 400, "JSON object body"},
		{"POST", "/admin/v1/users/phil/disable", map[string]string{"reason": " "}, "", 400, "reason"},
		{"POST", "/admin/v1/users/ghost/disable", map[string]string{"reason": "x"}, "", 404, "no such user"},
		{"POST", "/admin/v1/users/-bad/revoke", nil, "", 400, "user id"},
		{"POST", "/admin/v1/users/phil/revoke", `{"all":true}`, "", 400, "unknown field"},
		{"PUT", "/admin/v1/users/phil/roles", map[string]any{}, "", 400, "new roles"},
		{"PUT", "/admin/v1/users/phil/roles", map[string]any{"roles": "nurse"}, "", 400, "wrong type"},
		{"PUT", "/admin/v1/users/phil/roles", map[string]any{"roles": []string{"nurse", "nurse"}}, "", 400, "twice"},
		{"POST", "/admin/v1/access-review/phil", map[string]any{}, "", 400, "keep"},
		{"POST", "/admin/v1/users/phil/training", map[string]string{"completed": "yesterday", "expires": "2030-01-01"}, "", 400, "date"},
		{"POST", "/admin/v1/users/phil/training", map[string]string{"completed": "2026-01-01"}, "", 400, "expires"},
		{"POST", "/admin/v1/users/phil/training", map[string]string{"completed": "2026-01-01", "expires": "2025-01-01"}, "", 400, "later expiry"},
	}
	for _, tc := range tests {
		var hdr []string
		if tc.ctype != "" {
			hdr = []string{"Content-Type", tc.ctype}
		}
		r := e.do("ada", tc.method, tc.path, tc.body, hdr...)
		if r.status != tc.want || !strings.Contains(r.diagnostics(), tc.say) {
			t.Errorf("%s %s %v: %d %q, want %d saying %q", tc.method, tc.path, tc.body, r.status, r.diagnostics(), tc.want, tc.say)
		}
		if strings.Contains(string(r.body), "horse-staple") || strings.Contains(string(r.body), weak) {
			t.Errorf("%s %s: the answer repeats the password", tc.method, tc.path)
		}
	}
	after, err := e.dir.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("refused requests changed accounts (-before +after):\n%s", diff)
	}
	for _, ev := range e.audited() {
		if strings.Contains(ev, "horse-staple") || strings.Contains(ev, weak) {
			t.Fatalf("a password reached the audit log: %s", ev)
		}
	}
}

// The whole lifecycle through the API: create, roles, unlock, revoke, list.
func TestUserLifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.do("ada", "POST", "/admin/v1/users", map[string]any{"id": "nina", "name": "Nina Nurse", "roles": []string{"nurse"},
		"practitioner": "pr-9", "password": "violet-otter-trombone-42"})
	if r.status != http.StatusCreated || r.header.Get("Location") != "/admin/v1/users/nina" {
		t.Fatalf("create: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	if strings.Contains(string(r.body), "violet-otter") {
		t.Fatal("the create answer repeats the password")
	}
	if _, err := e.dir.Login(context.Background(), "nina", "violet-otter-trombone-42", "192.0.2.1"); err != nil {
		t.Fatalf("login with the password given to the API: %v", err)
	}
	if r := e.do("ada", "PUT", "/admin/v1/users/nina/roles", map[string]any{"roles": []string{"nurse", "billing"}}); r.status != 200 {
		t.Fatalf("roles: %d %s", r.status, r.body)
	}
	if diff := cmp.Diff([]string{"nurse", "billing"}, e.roles("nina")); diff != "" {
		t.Errorf("roles (-want +got):\n%s", diff)
	}
	for _, op := range []string{"unlock", "revoke"} {
		if r := e.do("sam", "POST", "/admin/v1/users/nina/"+op, nil); r.status != 200 {
			t.Errorf("%s: %d %s", op, r.status, r.body)
		}
	}
	r = e.do("sam", "GET", "/admin/v1/users", nil)
	var list struct{ Users []account.Account }
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Users) != 6 {
		t.Fatalf("list: %d %v %s", r.status, err, r.body)
	}
	var ids []string
	for _, u := range list.Users {
		ids = append(ids, u.ID)
	}
	if diff := cmp.Diff([]string{"ada", "aud", "nina", "phil", "pia", "sam"}, ids); diff != "" {
		t.Errorf("listed ids (-want +got):\n%s", diff)
	}
	if strings.Contains(string(r.body), "hash") || strings.Contains(string(r.body), "argon") {
		t.Error("the list shows password hashes")
	}
	if e.lastEvent(`"user-revoke"`, `"sam"`, "urn:phivault:user:nina") == "" {
		t.Error("the revoke is not audited")
	}
}

// Nobody widens, keeps, re-enables or unlocks their own access, or records
// their own training; another administrator can.
func TestNoGrantsToOneself(t *testing.T) {
	e := newEnv(t)
	before := e.roles("ada")
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"PUT", "/admin/v1/users/ada/roles", map[string][]string{"roles": {"administrator", "auditor"}}},
		{"POST", "/admin/v1/access-review/ada", map[string][]string{"keep": before}},
		{"POST", "/admin/v1/users/ada/training", map[string]string{"course": "hipaa", "completed": "2026-01-01", "expires": "2027-01-01"}},
		{"POST", "/admin/v1/users/ada/unlock", nil},
		{"POST", "/admin/v1/users/ada/enable", nil},
	} {
		if r := e.do("ada", c.method, c.path, c.body); r.status != http.StatusForbidden {
			t.Errorf("%s %s on one's own account: %d %s, want 403", c.method, c.path, r.status, r.body)
		}
	}
	if got := e.roles("ada"); !slices.Equal(got, before) {
		t.Errorf("roles after refused self-changes = %v, want %v", got, before)
	}
	if r := e.do("sam", "PUT", "/admin/v1/users/ada/roles", map[string][]string{"roles": {"administrator", "auditor"}}); r.status != http.StatusOK {
		t.Errorf("another officer changing ada's roles: %d %s", r.status, r.body)
	}
}
