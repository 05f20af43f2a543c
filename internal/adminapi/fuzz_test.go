package adminapi

import (
	"errors"
	"testing"
)

// The body parsers never panic, refuse with a client error (4xx) and,
// when they accept, return what the handlers rely on.
func FuzzBodies(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"id":"nina","roles":["nurse"],"password":"violet-otter-trombone-42"}`,
		`{"reason":"left"}`, `{"roles":[]}`, `{"roles":null}`, `{"keep":["auditor"]}`,
		`{"course":"hipaa","completed":"2026-01-01","expires":"2027-01-01T00:00:00Z"}`,
		`{"completed":1}`, `{} {}`, `[`, `{"keep":[1]}`, "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(what string, err error) {
			var ae *apiError
			if err != nil && (!errors.As(err, &ae) || ae.status < 400 || ae.status > 499 || ae.msg == "") {
				t.Fatalf("%s(%q): %v is not a client error", what, b, err)
			}
		}
		c, err := parseCreate(b)
		check("parseCreate", err)
		if err == nil && (c.ID == "" || len(c.Roles) == 0 || c.Password == "") {
			t.Fatalf("parseCreate(%q) accepted %+v", b, c)
		}
		reason, err := parseReason(b, true)
		check("parseReason", err)
		if err == nil && reason == "" {
			t.Fatalf("parseReason(%q) accepted an empty required reason", b)
		}
		_, err = parseReason(b, false)
		check("parseReason optional", err)
		_, err = parseRoles(b)
		check("parseRoles", err)
		_, err = parseKeep(b)
		check("parseKeep", err)
		tr, err := parseTraining(b)
		check("parseTraining", err)
		if err == nil && (tr.Course == "" || tr.Completed.IsZero() || tr.Expires.IsZero()) {
			t.Fatalf("parseTraining(%q) accepted %+v", b, tr)
		}
	})
}
