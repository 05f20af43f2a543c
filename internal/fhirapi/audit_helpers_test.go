package fhirapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/store"
)

// evSummary is what the audit tests check of a stored AuditEvent leaf.
type evSummary struct {
	Interaction string
	Action      string
	Outcome     string
	User        string
	Decision    string   // permit or deny
	Patients    []string // patient ids (entity role 1)
	Entities    []string // references of returned or changed resources
	Query       bool     // a keyed hash of the query is recorded
}

// summarize decodes a stored leaf.
func summarize(t testing.TB, leaf []byte) evSummary {
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
			Name string
		}
		Extension []struct {
			URL       string
			ValueCode string
		}
	}
	if err := json.Unmarshal(leaf, &ae); err != nil || ae.ResourceType != "AuditEvent" || len(ae.Subtype) != 1 || len(ae.Agent) == 0 {
		t.Fatalf("leaf is not an AuditEvent as expected (%v): %s", err, leaf)
	}
	s := evSummary{Interaction: ae.Subtype[0].Code, Action: ae.Action, Outcome: ae.Outcome, User: ae.Agent[0].Who.Identifier.Value}
	for _, e := range ae.Entity {
		switch {
		case e.Type.Code == "1" && e.Role.Code == "1":
			s.Patients = append(s.Patients, strings.TrimPrefix(e.What.Reference, "Patient/"))
		case e.Role.Code == "24":
			s.Query = e.Name != ""
		default:
			s.Entities = append(s.Entities, e.What.Reference)
		}
	}
	for _, x := range ae.Extension {
		if x.URL == "urn:phivault:decision" {
			s.Decision = x.ValueCode
		}
	}
	slices.Sort(s.Patients)
	slices.Sort(s.Entities)
	return s
}

// leaves returns the stored audit leaves from index from on.
func leaves(t testing.TB, db store.Backend, from int64) [][]byte {
	t.Helper()
	var out [][]byte
	err := db.View(context.Background(), func(r store.Reader) error {
		n, err := r.AuditSize()
		if err != nil {
			return err
		}
		out, err = r.AuditLeaves(from, n)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func auditSize(t testing.TB, db store.Backend) int64 {
	t.Helper()
	var n int64
	if err := db.View(context.Background(), func(r store.Reader) (err error) { n, err = r.AuditSize(); return err }); err != nil {
		t.Fatal(err)
	}
	return n
}

// raw sends a request as who through h and returns the recorder.
func raw(h http.Handler, who *policy.Principal, method, path string, body any, hdr ...string) *httptest.ResponseRecorder {
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		b, _ = json.Marshal(v)
	}
	r := httptest.NewRequest(method, path, bytes.NewReader(b))
	if who != nil {
		r = r.WithContext(policy.WithPrincipal(r.Context(), *who))
	}
	r.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// rawCtx sends a request as the administrator; ctx, when not nil, makes
// the request's context (a deadline, as the server layer sets).
func rawCtx(h http.Handler, ctx func() (context.Context, context.CancelFunc), method, path string, body any, hdr ...string) *httptest.ResponseRecorder {
	if ctx == nil {
		return raw(h, &admin, method, path, body, hdr...)
	}
	c, cancel := ctx()
	defer cancel()
	return raw(withCtx{h, c}, &admin, method, path, body, hdr...)
}

// withCtx serves requests under a given parent context.
type withCtx struct {
	h   http.Handler
	ctx context.Context
}

func (w withCtx) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	ctx := policy.WithPrincipal(w.ctx, admin)
	if p, ok := policy.PrincipalFrom(r.Context()); ok {
		ctx = policy.WithPrincipal(w.ctx, p)
	}
	w.h.ServeHTTP(rw, r.WithContext(ctx))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
