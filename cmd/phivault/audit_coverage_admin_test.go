package main

// The admin API (/admin/v1/) and device cases of TestAuditCoverageServer.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-cmp/cmp"
)

// acBearer sends method path with a bearer token and a JSON body (nil:
// none) and requires status.
func acBearer(e *mxEnv, cl *http.Client, token, method, path, body string, status int) error {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, e.origin+path, rd)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := cl.Do(req)
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

func acAdminAPICases(e *mxEnv, c *acCov) {
	const admin = "u-administrator"
	tok := e.tokens[admin]
	user := func(interaction, action, outcome, target string) acEvent {
		ev := acEvent{Interaction: interaction, Action: action, Outcome: outcome, User: admin, Decision: "permit"}
		if target != "" {
			ev.Entities = []string{"urn:phivault:user:" + target}
		}
		return ev
	}
	cases := []struct {
		route, what, method, path, body string
		token                           string
		status                          int
		want                            []acEvent
	}{
		{"GET /admin/v1/users", "no credentials", "GET", "/admin/v1/users", "", "", 401,
			[]acEvent{{Interaction: "login-failed", Action: "E", Outcome: "4", Decision: "deny"}}},
		{"GET /admin/v1/users", "a nurse is refused", "GET", "/admin/v1/users", "", e.tokens["u-nurse"], 403,
			[]acEvent{{Interaction: "user-list", Action: "R", Outcome: "4", User: "u-nurse", Decision: "deny"}}},
		{"GET /admin/v1/users", "listed", "GET", "/admin/v1/users", "", tok, 200, []acEvent{user("user-list", "R", "0", "")}},
		{"POST /admin/v1/users", "created", "POST", "/admin/v1/users",
			`{"id":"u-cov","name":"Coverage","roles":["nurse"],"practitioner":"pr-nurse","password":"` + mxPassword + `"}`, tok, 201,
			[]acEvent{user("user-create", "C", "0", "u-cov")}},
		{"POST /admin/v1/users", "bad body", "POST", "/admin/v1/users", `{"id":`, tok, 400, []acEvent{user("user-create", "C", "4", "")}},
		{"GET /admin/v1/users/{id}", "read", "GET", "/admin/v1/users/u-cov", "", tok, 200, []acEvent{user("user-read", "R", "0", "u-cov")}},
		{"GET /admin/v1/users/{id}", "unknown", "GET", "/admin/v1/users/u-none", "", tok, 404, []acEvent{user("user-read", "R", "4", "u-none")}},
		{"PUT /admin/v1/users/{id}/roles", "roles set", "PUT", "/admin/v1/users/u-cov/roles", `{"roles":["physician"]}`, tok, 200,
			[]acEvent{user("user-update", "U", "0", "u-cov")}},
		{"POST /admin/v1/users/{id}/training", "recorded", "POST", "/admin/v1/users/u-cov/training",
			`{"completed":"2026-01-01","expires":"2027-01-01"}`, tok, 201, []acEvent{user("training-record", "U", "0", "u-cov")}},
		{"POST /admin/v1/users/{id}/disable", "disabled", "POST", "/admin/v1/users/u-cov/disable", `{"reason":"coverage"}`, tok, 200,
			[]acEvent{user("user-disable", "U", "0", "u-cov")}},
		{"POST /admin/v1/users/{id}/enable", "enabled", "POST", "/admin/v1/users/u-cov/enable", `{"reason":"coverage"}`, tok, 200,
			[]acEvent{user("user-enable", "U", "0", "u-cov")}},
		{"POST /admin/v1/users/{id}/unlock", "unlocked", "POST", "/admin/v1/users/u-cov/unlock", "", tok, 200,
			[]acEvent{user("user-unlock", "U", "0", "u-cov")}},
		{"POST /admin/v1/users/{id}/revoke", "sessions and tokens revoked", "POST", "/admin/v1/users/u-cov/revoke", "", tok, 200,
			[]acEvent{user("user-revoke", "U", "0", "u-cov")}},
		{"GET /admin/v1/access-review", "report", "GET", "/admin/v1/access-review", "", tok, 200, []acEvent{user("access-review", "R", "0", "")}},
		{"POST /admin/v1/access-review/{id}", "recertified", "POST", "/admin/v1/access-review/u-cov", `{"keep":["physician"]}`, tok, 200,
			[]acEvent{user("user-recertify", "U", "0", "u-cov")}},
	}
	for _, tc := range cases {
		c.check(tc.route, tc.what, func() error {
			return acBearer(e, e.client, tc.token, tc.method, tc.path, tc.body, tc.status)
		}, tc.want...)
	}
}

func acDeviceCases(e *mxEnv, c *acCov) {
	obs := `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},` +
		`"subject":{"reference":"Patient/pt-ct-none"},"valueQuantity":{"value":70,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
	c.check("/device/fhir/", "no client certificate", func() error {
		return acBearer(e, e.client, "", "POST", "/device/fhir/Observation", obs, 403)
	}, acEvent{Interaction: "login-failed", Action: "E", Outcome: "4", Decision: "deny"})
	// The created id is known only from the answer: check the event by
	// hand with it.
	c.covered["/device/fhir/"] = true
	before := c.size()
	loc, err := acCreate(e, obs)
	if err != nil {
		e.t.Errorf("/device/fhir/ (observation submitted): %v", err)
		return
	}
	want := []acEvent{{Interaction: "create", Action: "C", Outcome: "0", User: "device:matrix-monitor", Decision: "permit",
		Patients: []string{"pt-ct-none"}, Entities: []string{loc}}}
	if diff := cmp.Diff(want, c.since(before)); diff != "" {
		e.t.Errorf("/device/fhir/ (observation submitted): audit events (-want +got):\n%s", diff)
	}
}

// acCreate posts obs to the device endpoint with the device certificate
// and returns the created version's reference (Observation/id/_history/n).
func acCreate(e *mxEnv, obs string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, e.origin+"/device/fhir/Observation", strings.NewReader(obs))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := e.device.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	loc := resp.Header.Get("Location")
	_, ref, ok := strings.Cut(loc, "/fhir/")
	if resp.StatusCode != http.StatusCreated || !ok || !strings.HasPrefix(ref, "Observation/") {
		return "", fmt.Errorf("create: status %d, Location %q", resp.StatusCode, loc)
	}
	return ref, nil
}
