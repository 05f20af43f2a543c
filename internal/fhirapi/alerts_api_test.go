package fhirapi

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/detect"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

type noCare struct{}

func (noCare) Relationships(context.Context, string, string) ([]string, error) { return nil, nil }
func (noCare) Consents(context.Context, string) ([]policy.Consent, error)      { return nil, nil }

// alertsEnv is the API with the default Cedar policies and the live
// detector's alert store over one SQLite store, as serve wires them.
type alertsEnv struct {
	*testEnv
	live *detect.Live
}

func newAlertsEnv(t *testing.T) *alertsEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kp := filepath.Join(dir, "kek.json")
	if err := keys.CreateFile(kp, nil); err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenFile(kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := barrier.Open(ctx, kek, db, 100)
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := detect.NewAlertStore(ctx, db, b)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.NewEngine(policy.DefaultPolicies(), noCare{})
	if err != nil {
		t.Fatal(err)
	}
	ix := &fakeIndex{b: b}
	rec := records.New(db, b, ix, "test")
	log := audit.NewLog(db, 5*time.Second)
	api := New(Config{Records: rec, Search: &fakeSearch{ix: ix, rec: rec}, Policy: pol, Audit: log,
		Base: testBase, Version: "test", Alerts: alerts})
	live := detect.NewLive(detect.LiveConfig{Log: log.Prover(), Alerts: alerts})
	return &alertsEnv{testEnv: &testEnv{t: t, api: api, db: db, h: api.Handler()}, live: live}
}

func officer(role string) policy.Principal {
	return policy.Principal{UserID: "o-" + role, Roles: []string{role}, Method: "password+totp", MFA: true, Trained: true}
}

// raiseBreakGlass records a break-the-glass opening and lets the detector
// raise its alert; it returns the alert's id.
func (env *alertsEnv) raiseBreakGlass(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	ev := &audit.Event{Time: time.Now(), Interaction: "break-glass", Action: "E", Outcome: audit.Success, Allowed: true,
		UserID: "dr-eve", BreakGlass: true, OutcomeDesc: "break-the-glass opened: emergency-treatment"}
	if err := env.api.Audit.Record(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := env.live.Step(ctx); err != nil {
		t.Fatal(err)
	}
	w := raw(env.h, ptr(officer("privacy-officer")), "GET", "/fhir/_alerts", nil)
	var body struct{ Alerts []detect.StoredAlert }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Alerts) == 0 {
		t.Fatalf("no alert listed: %d %s", w.Code, w.Body)
	}
	return body.Alerts[0].ID
}

func ptr[T any](v T) *T { return &v }

func TestAlertsAPIOfficersOnly(t *testing.T) {
	env := newAlertsEnv(t)
	env.raiseBreakGlass(t)
	tests := []struct {
		role   string
		status int
	}{
		{"privacy-officer", 200}, {"security-officer", 200}, {"auditor", 200},
		{"physician", 403}, {"nurse", 403}, {"administrator", 403}, {"patient", 403},
	}
	for _, tc := range tests {
		t.Run(tc.role, func(t *testing.T) {
			before := auditSize(t, env.db)
			w := raw(env.h, ptr(officer(tc.role)), "GET", "/fhir/_alerts", nil)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			ls := leaves(t, env.db, before)
			decision := map[int]string{200: "permit", 403: "deny"}[tc.status]
			outcome := map[int]string{200: "0", 403: "4"}[tc.status]
			want := []evSummary{{Interaction: "alerts-list", Action: "R", Outcome: outcome, User: "o-" + tc.role, Decision: decision}}
			var got []evSummary
			for _, l := range ls {
				got = append(got, summarize(t, l))
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("audit (-want +got):\n%s", d)
			}
			if tc.status == 200 {
				var body struct{ Alerts []detect.StoredAlert }
				json.Unmarshal(w.Body.Bytes(), &body)
				if len(body.Alerts) != 1 || body.Alerts[0].UserID != "dr-eve" || !cmp.Equal(body.Alerts[0].Rules, []string{"break-glass"}) ||
					body.Alerts[0].Status != detect.StatusNew || len(body.Alerts[0].Reasons) == 0 {
					t.Errorf("alerts = %+v", body.Alerts)
				}
			} else if strings.Contains(w.Body.String(), "dr-eve") {
				t.Errorf("a denial shows the alert: %s", w.Body)
			}
		})
	}
}

func TestAlertsAPIReviewAudited(t *testing.T) {
	env := newAlertsEnv(t)
	id := env.raiseBreakGlass(t)
	po := officer("privacy-officer")
	const note = "confirmed with the ED charge nurse"
	path := "/fhir/_alerts/" + id + "/$review"
	before := auditSize(t, env.db)
	w := raw(env.h, &po, "POST", path, map[string]string{"status": "closed-false-positive", "note": note}, "Content-Type", "application/json")
	if w.Code != 200 {
		t.Fatalf("review: %d %s", w.Code, w.Body)
	}
	ls := leaves(t, env.db, before)
	want := []evSummary{{Interaction: "alert-review", Action: "U", Outcome: "0", User: po.UserID, Decision: "permit", Entities: []string{"Alert/" + id}}}
	var got []evSummary
	for _, l := range ls {
		got = append(got, summarize(t, l))
		if strings.Contains(string(l), note) {
			t.Errorf("the review note reached the audit log: %s", l)
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("audit (-want +got):\n%s", d)
	}
	w = raw(env.h, &po, "GET", "/fhir/_alerts?status=closed-false-positive", nil)
	var body struct{ Alerts []detect.StoredAlert }
	json.Unmarshal(w.Body.Bytes(), &body)
	if len(body.Alerts) != 1 || len(body.Alerts[0].Notes) != 1 || body.Alerts[0].Notes[0].Note != note || body.Alerts[0].Notes[0].By != po.UserID {
		t.Errorf("after review: %s", w.Body)
	}

	bad := []struct {
		name, path, body string
		who              policy.Principal
		status           int
	}{
		{"unknown status", path, `{"status":"done"}`, po, 400},
		{"unknown field", path, `{"status":"new","x":1}`, po, 400},
		{"not json", path, `{`, po, 400},
		{"bad id", "/fhir/_alerts/zzz/$review", `{"status":"new"}`, po, 400},
		{"no such alert", "/fhir/_alerts/al-0000000000000000/$review", `{"status":"new"}`, po, 404},
		{"physician", path, `{"status":"new"}`, doctorMFA, 403},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			before := auditSize(t, env.db)
			w := raw(env.h, &tc.who, "POST", tc.path, tc.body, "Content-Type", "application/json")
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			ls := leaves(t, env.db, before)
			if len(ls) != 1 || summarize(t, ls[0]).Outcome != "4" || summarize(t, ls[0]).Interaction != "alert-review" {
				t.Errorf("events: %s", ls)
			}
			w = raw(env.h, &po, "GET", "/fhir/_alerts", nil)
			json.Unmarshal(w.Body.Bytes(), &body)
			if body.Alerts[0].Status != detect.StatusFalsePositive || len(body.Alerts[0].Notes) != 1 {
				t.Errorf("a refused review changed the alert: %+v", body.Alerts[0])
			}
		})
	}
}

var doctorMFA = policy.Principal{UserID: "doc", Roles: []string{"physician"}, Method: "password+totp", MFA: true, Trained: true}

// fakeAlerts is an alert store for the coverage test: one alert, reviews
// append their leaf to db.
type fakeAlerts struct{ db store.Backend }

func (f fakeAlerts) List(context.Context, int) ([]*detect.StoredAlert, error) {
	return []*detect.StoredAlert{{ID: "al-0123456789abcdef", UserID: "u", Status: detect.StatusNew}}, nil
}

func (f fakeAlerts) Review(ctx context.Context, id string, n detect.Note, leaf []byte) (*detect.StoredAlert, error) {
	if id != "al-0123456789abcdef" {
		return nil, detect.ErrNoAlert
	}
	err := f.db.Update(ctx, func(w store.Writer) error { _, err := w.AppendAudit(leaf); return err })
	return &detect.StoredAlert{ID: id, Status: n.Status}, err
}

// alertsCoverageExtra covers the alert routes for TestAuditCoverage.
func alertsCoverageExtra(t *testing.T, cv *coverage) {
	cv.env.api.Alerts = fakeAlerts{cv.env.db}
	defer func() { cv.env.api.Alerts = nil }()
	cv.do(admin, "GET", "/fhir/_alerts", nil, 200, []evSummary{ev("alerts-list", "R", nil)})
	cv.do(admin, "GET", "/fhir/_alerts?_count=0", nil, 400, []evSummary{failed("alerts-list", "R")})
	cv.do(admin, "POST", "/fhir/_alerts/al-0123456789abcdef/$review", `{"status":"investigating"}`, 200,
		[]evSummary{ev("alert-review", "U", nil, "Alert/al-0123456789abcdef")}, "Content-Type", "application/json")
	cv.do(admin, "POST", "/fhir/_alerts/al-1123456789abcdef/$review", `{"status":"investigating"}`, 404,
		[]evSummary{failed("alert-review", "U")}, "Content-Type", "application/json")
}
