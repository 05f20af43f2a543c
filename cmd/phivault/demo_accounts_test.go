package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/synth"
)

// The demo's physician reaches the records of the patients the generated
// data relates them to (general practitioner, care team, encounters), and
// no other; the demo's privacy officer reaches none.
func TestDemoAccountsFollowCareRelationships(t *testing.T) {
	if testing.Short() {
		t.Skip("loads a synthetic population")
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "demo")
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	first, gp, err := loadDemo(dir, synth.Options{Seed: 1, Patients: 30}, io.Discard)
	if err != nil || first == "" || !strings.HasPrefix(gp, "Practitioner/") {
		t.Fatalf("loadDemo = %q, %q, %v", first, gp, err)
	}
	if err := demoAccounts(dir, gp, io.Discard); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, demoAccountsName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("demo accounts file: %v %v", fi, err)
	}
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	d, err := account.Open(ctx, n.db, n.barrier, account.DefaultOptions(n.audit))
	if err != nil {
		t.Fatal(err)
	}
	bearer := &authn.Bearer{Operator: n.tokens, Accounts: d}
	h := n.api("https://phivault/fhir").Handler()
	as := func(user, role, path string) (int, map[string]any) {
		a, err := d.Get(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, _ := n.tokens.MintAccount(user, []string{role}, a.Epoch, time.Hour)
		p, err := bearer.Check(tok.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "https://phivault"+path, nil)
		h.ServeHTTP(rec, req.WithContext(policy.WithPrincipal(req.Context(), p)))
		var body map[string]any
		json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body
	}
	if code, _ := as("dr.demo", "physician", "/fhir/Patient/"+first); code != http.StatusOK {
		t.Errorf("the demo physician reading their patient = %d, want 200", code)
	}
	if code, _ := as("privacy.demo", "privacy-officer", "/fhir/Patient/"+first); code != http.StatusForbidden {
		t.Errorf("the privacy officer reading a patient = %d, want 403", code)
	}
	_, all := as("dr.demo", "physician", "/fhir/Patient?_count=100&_total=accurate")
	entries, _ := all["entry"].([]any)
	if len(entries) == 0 || len(entries) >= 30 {
		t.Errorf("the physician's patient search returned %d of 30 patients: want their own patients only", len(entries))
	}
}
