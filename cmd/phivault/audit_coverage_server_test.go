package main

// Audit coverage of the public server outside the FHIR API (issue 5,
// acceptance 1; the FHIR routes are internal/fhirapi's
// audit_coverage_test.go): every route of serve's public handler is
// enumerated, and each is performed and must leave exactly the expected
// audit events, or be allowlisted with the reason it records nothing. A
// route added without a case fails the test by name.

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/store"
)

// acEvent is what the coverage test checks of one audit event.
type acEvent struct {
	Interaction, Action, Outcome string
	User                         string   // agent user id
	Client                       string   // agent client app id, if any
	Decision                     string   // permit or deny
	Patients                     []string // patient ids
	Entities                     []string // other references (returned or changed ids)
}

// acLeaf decodes a stored leaf.
func acLeaf(t *testing.T, leaf []byte) acEvent {
	t.Helper()
	var ae struct {
		ResourceType string `json:"resourceType"`
		Subtype      []struct{ Code string }
		Action       string
		Outcome      string
		Agent        []struct {
			Who struct {
				Identifier struct{ System, Value string }
			}
		}
		Entity []struct {
			What struct{ Reference string }
			Type struct{ Code string }
			Role struct{ Code string }
		}
		Extension []struct{ URL, ValueCode string }
	}
	if err := json.Unmarshal(leaf, &ae); err != nil || ae.ResourceType != "AuditEvent" || len(ae.Subtype) != 1 || len(ae.Agent) == 0 {
		t.Fatalf("leaf is not an AuditEvent (%v): %.300s", err, leaf)
	}
	ev := acEvent{Interaction: ae.Subtype[0].Code, Action: ae.Action, Outcome: ae.Outcome, User: ae.Agent[0].Who.Identifier.Value}
	for _, a := range ae.Agent[1:] {
		if a.Who.Identifier.System == "urn:phivault:client" {
			ev.Client = a.Who.Identifier.Value
		}
	}
	for _, x := range ae.Extension {
		if x.URL == "urn:phivault:decision" {
			ev.Decision = x.ValueCode
		}
	}
	for _, e := range ae.Entity {
		switch {
		case e.Type.Code == "1" && e.Role.Code == "1":
			ev.Patients = append(ev.Patients, strings.TrimPrefix(e.What.Reference, "Patient/"))
		case e.What.Reference != "":
			ev.Entities = append(ev.Entities, e.What.Reference)
		}
	}
	slices.Sort(ev.Patients)
	slices.Sort(ev.Entities)
	return ev
}

// acCov performs the cases and remembers which routes they covered.
type acCov struct {
	t       *testing.T
	db      store.Backend
	covered map[string]bool
}

func (c *acCov) size() int64 {
	c.t.Helper()
	var n int64
	if err := c.db.View(context.Background(), func(r store.Reader) (err error) { n, err = r.AuditSize(); return err }); err != nil {
		c.t.Fatal(err)
	}
	return n
}

// since returns the events appended from index from on.
func (c *acCov) since(from int64) []acEvent {
	c.t.Helper()
	var leaves [][]byte
	err := c.db.View(context.Background(), func(r store.Reader) error {
		n, err := r.AuditSize()
		if err != nil {
			return err
		}
		leaves, err = r.AuditLeaves(from, n)
		return err
	})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []acEvent
	for _, l := range leaves {
		out = append(out, acLeaf(c.t, l))
	}
	return out
}

// check runs do (one request of route, which checks its own status) and
// requires exactly the events want, in any order; no want: no event.
func (c *acCov) check(route, what string, do func() error, want ...acEvent) {
	c.t.Helper()
	c.covered[route] = true
	before := c.size()
	if err := do(); err != nil {
		c.t.Errorf("%s (%s): %v", route, what, err)
		return
	}
	got := c.since(before)
	key := func(a, b acEvent) int { return strings.Compare(a.Interaction+a.Outcome, b.Interaction+b.Outcome) }
	slices.SortFunc(got, key)
	slices.SortFunc(want, key)
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })); diff != "" {
		c.t.Errorf("%s (%s): audit events (-want +got):\n%s", route, what, diff)
	}
}

// acPublicQuiet are the public routes that record no event, with the
// path requested and the reason. The test still requests each (anonymous
// and signed in) and finds nothing recorded.
var acPublicQuiet = map[string]struct{ method, path, why string }{
	"GET /healthz":      {"GET", "/healthz", "liveness probe: no user, no data"},
	"GET /readyz":       {"GET", "/readyz", "readiness probe: one store read, no user, no data"},
	"GET /metrics":      {"GET", "/metrics", "Prometheus counters: no user, no patient data"},
	"/":                 {"GET", "/no-such-route", "everything else: 404 without touching data"},
	"GET /static/":      {"GET", "/static/passkey.js", "the console's static scripts and styles"},
	"GET /{$}":          {"GET", "/", "redirects to the console"},
	"GET /login":        {"GET", "/login", "the sign-in form; no one is identified yet"},
	"GET /login/totp":   {"GET", "/login/totp", "the second-factor form of a pending sign-in; the attempt is audited on POST"},
	"GET /breakglass":   {"GET", "/breakglass", "the break-the-glass form; opening the window is audited on POST"},
	"GET /console/":     {"GET", "/console/", "the console home page: the signed-in user's own session, no patient data"},
	"GET /account/totp": {"GET", "/account/totp", "the enrolment form (a pending key of the user's own); enrolment is audited on POST"},
	"GET /fhir/.well-known/smart-configuration": {"GET", "/fhir/.well-known/smart-configuration", "public SMART discovery metadata: no user, no data"},
	"GET /oauth/jwks":       {"GET", "/oauth/jwks", "the token-signing public keys: public by design"},
	"OPTIONS /oauth/token":  {"OPTIONS", "/oauth/token", "CORS preflight: nothing is exchanged"},
	"OPTIONS /oauth/revoke": {"OPTIONS", "/oauth/revoke", "CORS preflight: nothing is exchanged"},
	"GET /oauth/authorize":  {"GET", "/oauth/authorize", "shows the consent page (here refused: no app named); the decision is audited on POST (consent-grant, consent-deny)"},
}

// acServerRoutes are the routes server.Handler registers itself: the
// literal patterns passed to route() in internal/server/server.go.
func acServerRoutes(t *testing.T) []string {
	return acPatterns(t, "../../internal/server/server.go", "route")
}

// acPatterns returns the string literals passed first to calls named one
// of names in file.
func acPatterns(t *testing.T, file string, names ...string) []string {
	return acPatternsIn(t, file, nil, names...)
}

// acPatternsIn is acPatterns inside the functions named in fns only (nil:
// anywhere in the file).
func acPatternsIn(t *testing.T, file string, fns []string, names ...string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	visit := func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 2 {
			return true
		}
		var fn string
		switch f := call.Fun.(type) {
		case *ast.Ident:
			fn = f.Name
		case *ast.SelectorExpr:
			fn = f.Sel.Name
		}
		if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING && slices.Contains(names, fn) {
			p, _ := strconv.Unquote(lit.Value)
			out = append(out, p)
		}
		return true
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && (fns == nil || slices.Contains(fns, fd.Name.Name)) {
			ast.Inspect(fd, visit)
		}
	}
	return out
}

// TestAuditCoverageServer performs every public route outside /fhir/.
func TestAuditCoverageServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server with the authorization matrix's data (about 2 s)")
	}
	e := newMxEnv(t)
	c := &acCov{t: t, db: e.n.db, covered: map[string]bool{}}
	routes := slices.Sorted(maps.Keys(e.acc.routes))
	if server := acServerRoutes(t); len(server) < 3 {
		t.Fatalf("found %d routes in internal/server/server.go; the enumeration is broken", len(server))
	} else {
		routes = append(routes, server...)
	}
	quiet := e.browser("u-physician")
	if err := quiet.signIn(); err != nil {
		t.Fatal(err)
	}
	for r, q := range acPublicQuiet {
		c.check(r, q.why, func() error {
			if err := acGetQuiet(e.client, e.origin, q.method, q.path); err != nil {
				return err
			}
			// Signed in, the page itself must answer (not a 404 of a
			// mistyped path): 2xx or 3xx, but for the two that refuse.
			st, err := acStatusOf(quiet.c, e.origin, q.method, q.path)
			if err == nil && (st >= 400) != (r == "/" || r == "GET /oauth/authorize") {
				err = errStatus("signed in "+q.method+" "+q.path, st)
			}
			return err
		})
	}
	acConsoleCases(e, c)
	acSMARTCases(e, c)
	acAdminAPICases(e, c)
	acDeviceCases(e, c)
	for _, r := range routes {
		if r == "/fhir/" || r == "/fhir" {
			continue // internal/fhirapi's audit coverage test
		}
		if !c.covered[r] {
			t.Errorf("route %q has no audit coverage case: add one (or allowlist it with the reason it records nothing)", r)
		}
	}
}

// acGetQuiet sends one request with client and requires a status below 500.
func acGetQuiet(client *http.Client, origin, method, path string) error {
	st, err := acStatusOf(client, origin, method, path)
	if err == nil && st >= 500 {
		err = errStatus(method+" "+path, st)
	}
	return err
}

func acStatusOf(client *http.Client, origin, method, path string) (int, error) {
	req, err := http.NewRequest(method, origin+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

type statusErr struct {
	what string
	code int
}

func (s statusErr) Error() string { return s.what + ": status " + strconv.Itoa(s.code) }

func errStatus(what string, code int) error { return statusErr{what, code} }
