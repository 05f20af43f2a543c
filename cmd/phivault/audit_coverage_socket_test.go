package main

// Audit coverage of the admin socket (serve's adminMux): every pattern
// it registers is performed and must leave exactly its expected events.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
)

// acSocketRoutes are the patterns adminMux registers: the literals passed
// to Handle and HandleFunc in adminMux and the functions it calls.
func acSocketRoutes(t *testing.T) []string {
	t.Helper()
	var out []string
	for file, fns := range map[string][]string{"serve.go": {"adminMux"}, "client.go": {"adminClientRoutes"}, "seal.go": {"adminSealRoutes"}} {
		out = append(out, acPatternsIn(t, file, fns, "Handle", "HandleFunc")...)
	}
	slices.Sort(out)
	return out
}

// acSocketQuiet are the admin socket requests that record nothing, and why.
var acSocketQuiet = map[string]string{
	"GET /admin/clients":     "lists app registrations (names, redirect URIs, scopes): configuration, no patient data, no secret",
	"GET /admin/seal-status": "reports whether the keys are in memory and how many shares were given",
	"GET /admin/policy":      "shows the Cedar policy set in force: configuration, no patient data, no secret",
}

// TestAuditCoverageAdminSocket performs every admin socket route.
func TestAuditCoverageAdminSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server with the authorization matrix's data (about 2 s)")
	}
	e := newMxEnv(t)
	c := &acCov{t: t, db: e.n.db, covered: map[string]bool{}}
	routes := acSocketRoutes(t)
	if len(routes) < 8 {
		t.Fatalf("found %d admin socket routes (%q); the enumeration is broken", len(routes), routes)
	}
	api := e.n.api(e.origin + "/fhir")
	t.Cleanup(api.Close)
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := server.ListenAdmin(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: server.AdminHandler(e.n.adminMux(api.Handler(), e.acc)), ConnContext: server.AdminConnContext}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	socketUser := "operator:uid-" + strconv.Itoa(os.Getuid()) // the admin socket's caller, from SO_PEERCRED
	send := func(method, path, body string, status int) func() error {
		return func() error {
			req, err := http.NewRequest(method, "http://phivault"+path, strings.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != status {
				return fmt.Errorf("%s %s: status %d, want %d: %.300s", method, path, resp.StatusCode, status, b)
			}
			return nil
		}
	}
	opEv := func(interaction, action, outcome string, entities ...string) acEvent {
		return acEvent{Interaction: interaction, Action: action, Outcome: outcome, User: socketUser, Decision: "permit", Entities: entities}
	}
	policySrc := policy.DefaultPolicies()
	sockEv := func(interaction, action string, entities ...string) acEvent {
		return acEvent{Interaction: interaction, Action: action, Outcome: "0", User: socketUser, Decision: "permit", Entities: entities}
	}
	patEv := func(interaction, action, outcome, decision string) acEvent {
		return acEvent{Interaction: interaction, Action: action, Outcome: outcome, User: socketUser, Decision: decision,
			Patients: []string{"pt-no-none"}, Entities: []string{"Patient/pt-no-none"}}
	}
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/pt-no-none"}}]}`
	cases := []struct {
		route, what, method, path, body string
		status                          int
		want                            []acEvent
	}{
		{"/fhir/", "read as the local operator", "GET", "/fhir/Patient/pt-ct-none", "", 200,
			[]acEvent{{Interaction: "read", Action: "R", Outcome: "0", User: socketUser, Decision: "permit", Patients: []string{"pt-ct-none"}, Entities: []string{"Patient/pt-ct-none/_history/1"}}}},
		{"/fhir", "a batch at the base: its own event and one per entry", "POST", "/fhir", batch, 200,
			[]acEvent{sockEv("batch", "E"), {Interaction: "read", Action: "R", Outcome: "0", User: socketUser, Decision: "permit", Patients: []string{"pt-no-none"}, Entities: []string{"Patient/pt-no-none/_history/1"}}}},
		{"POST /admin/token", "bad ttl: nothing issued", "POST", "/admin/token?user=u-nurse&role=nurse&ttl=soon", "", 400, nil},
		{"POST /admin/token", "issued for an account", "POST", "/admin/token?user=u-nurse&role=nurse&ttl=1h", "", 200,
			[]acEvent{opEv("token-issue", "E", "0", "urn:phivault:user:u-nurse")}},
		{"POST /admin/accounts", "list the accounts", "POST", "/admin/accounts", `{"cmd":"user","args":["list","--data","x"]}`, 200,
			[]acEvent{sockEv("user-list", "R")}},
		{"POST /admin/accounts", "show an account", "POST", "/admin/accounts", `{"cmd":"user","args":["show","--data","x","u-nurse"]}`, 200,
			[]acEvent{sockEv("user-read", "R", "urn:phivault:user:u-nurse")}},
		{"POST /admin/accounts", "the access review report", "POST", "/admin/accounts", `{"cmd":"access-review","args":["--data","x"]}`, 200,
			[]acEvent{sockEv("access-review", "R")}},
		{"POST /admin/accounts", "disable an account", "POST", "/admin/accounts", `{"cmd":"user","args":["disable","--data","x","u-billing","--reason","coverage"]}`, 200,
			[]acEvent{sockEv("user-disable", "U", "urn:phivault:user:u-billing")}},
		{"POST /admin/client/remove", "unknown app: nothing changes", "POST", "/admin/client/remove", `{"id":"no-such-app"}`, 400, nil},
		{"POST /admin/policy", "a policy set that does not parse: nothing changes", "POST", "/admin/policy", "permit (", 400, nil},
		{"POST /admin/policy", "the default set installed", "POST", "/admin/policy", string(policySrc), 200,
			[]acEvent{opEv("policy-update", "U", "0")}},
		{"POST /admin/backup/drill", "a malformed drill result: nothing recorded", "POST", "/admin/backup/drill", `{"snapshot":"../x","failed":""}`, 400, nil},
		{"POST /admin/backup/drill", "a failed drill recorded", "POST", "/admin/backup/drill", `{"snapshot":"0123456789abcdef0123456789abcdef","failed":"restore"}`, 200,
			[]acEvent{opEv("restore-drill", "E", "8", "urn:phivault:backup-snapshot:0123456789abcdef0123456789abcdef")}},
		{"POST /admin/reindex", "not a resource type: nothing happens", "POST", "/admin/reindex?type=Nope", "", 400, nil},
		{"POST /admin/reindex", "reindex of one type: started and done", "POST", "/admin/reindex?type=Observation", "", 200,
			[]acEvent{opEv("reindex", "E", "0"), opEv("reindex", "E", "0")}},
		{"/admin/keys/{op}", "status", "GET", "/admin/keys/status", "", 200, nil},
		{"/admin/keys/{op}", "rotate", "POST", "/admin/keys/rotate", "", 200, []acEvent{opEv("key-rotate", "E", "0")}},
		{"POST /admin/seal", "this node's key is not split: nothing happens", "POST", "/admin/seal", "", 409, nil},
		{"POST /admin/unseal", "this node's key is not split: nothing happens", "POST", "/admin/unseal", "share", 409, nil},
		{"GET /admin/seal-status", acSocketQuiet["GET /admin/seal-status"], "GET", "/admin/seal-status", "", 409, nil},
		{"GET /admin/clients", acSocketQuiet["GET /admin/clients"], "GET", "/admin/clients", "", 200, nil},
		{"GET /admin/policy", acSocketQuiet["GET /admin/policy"], "GET", "/admin/policy", "", 200, nil},
		{"POST /admin/patient/{op}", "legal hold placed", "POST", "/admin/patient/hold", `{"id":"pt-no-none","reason":"coverage hold"}`, 200,
			[]acEvent{patEv("legal-hold", "U", "0", "permit")}},
		{"POST /admin/patient/{op}", "erasure refused under the hold", "POST", "/admin/patient/erase", `{"id":"pt-no-none","reason":"coverage"}`, 409,
			[]acEvent{patEv("erase", "D", "4", "deny")}},
		{"POST /admin/patient/{op}", "hold released", "POST", "/admin/patient/release", `{"id":"pt-no-none"}`, 200,
			[]acEvent{patEv("legal-hold", "U", "0", "permit")}},
		{"POST /admin/patient/{op}", "erasure without a reason: nothing happens", "POST", "/admin/patient/erase", `{"id":"pt-no-none"}`, 400, nil},
		{"POST /admin/patient/{op}", "erased (crypto-shredded)", "POST", "/admin/patient/erase", `{"id":"pt-no-none","reason":"coverage"}`, 200,
			[]acEvent{patEv("erase", "D", "0", "permit")}},
	}
	for _, tc := range cases {
		c.check(tc.route, tc.what, send(tc.method, tc.path, tc.body, tc.status), tc.want...)
	}
	// Registration and removal: the client id is generated, so the
	// events are checked with the id the answer gives.
	c.covered["POST /admin/client"], c.covered["POST /admin/client/remove"] = true, true
	before := c.size()
	resp, err := hc.Post("http://phivault/admin/client", "application/json",
		strings.NewReader(`{"name":"socket app","type":"public","redirectUris":["https://a.example/cb"],"scopes":["patient/*.rs"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct{ Client struct{ ID string } }
	err = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || reg.Client.ID == "" {
		t.Fatalf("register: %d %v", resp.StatusCode, err)
	}
	if err := send("POST", "/admin/client/remove", `{"id":"`+reg.Client.ID+`"}`, 200)(); err != nil {
		t.Fatal(err)
	}
	want := []acEvent{opEv("client-register", "E", "0", "urn:phivault:client:"+reg.Client.ID), opEv("client-remove", "E", "0", "urn:phivault:client:"+reg.Client.ID)}
	if diff := cmp.Diff(want, c.since(before)); diff != "" {
		t.Errorf("POST /admin/client and /admin/client/remove: audit events (-want +got):\n%s", diff)
	}
	for _, r := range routes {
		if !c.covered[r] {
			t.Errorf("admin socket route %q has no audit coverage case", r)
		}
	}
}
