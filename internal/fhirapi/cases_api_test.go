package fhirapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/detect"
	"github.com/phivault/phivault/internal/policy"
)

// caseBody is GET /fhir/_cases/{id}'s answer.
type caseBody struct {
	Case   detect.StoredCase
	Alerts []detect.StoredAlert
}

// TestCasesAPI: one case per user holds all the user's alerts with the
// highest severity; officers list and read it, set its status with a note
// (sealed, never in the audit log), and every call is audited; other
// roles are refused and audited.
func TestCasesAPI(t *testing.T) {
	env := newAlertsEnv(t)
	ctx := context.Background()
	env.raiseBreakGlass(t) // dr-eve: break-glass (score 0.6, low)
	// A second alert for dr-eve on another day, and one for another user.
	for _, e := range []audit.Event{
		{Time: time.Now().Add(24 * time.Hour), Interaction: "break-glass", Action: "E", Outcome: audit.Success, Allowed: true, UserID: "dr-eve", BreakGlass: true},
		{Time: time.Now(), Interaction: "break-glass", Action: "E", Outcome: audit.Success, Allowed: true, UserID: "dr-bob", BreakGlass: true},
	} {
		if err := env.api.Audit.Record(ctx, &e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.live.Step(ctx); err != nil {
		t.Fatal(err)
	}
	po := officer("privacy-officer")
	w := raw(env.h, &po, "GET", "/fhir/_cases", nil)
	var list struct{ Cases []detect.StoredCase }
	if err := json.Unmarshal(w.Body.Bytes(), &list); w.Code != 200 || err != nil {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	got := map[string]detect.StoredCase{}
	for _, c := range list.Cases {
		got[c.ID] = c
	}
	eve := got[detect.CaseID("dr-eve")]
	if len(list.Cases) != 2 || eve.UserID != "dr-eve" || len(eve.Alerts) != 2 || eve.Status != detect.StatusNew || eve.Severity != "low" || eve.Score != 0.6 {
		t.Fatalf("cases = %+v", list.Cases)
	}

	before := auditSize(t, env.db)
	w = raw(env.h, &po, "GET", "/fhir/_cases/case-dr-eve", nil)
	var one caseBody
	if err := json.Unmarshal(w.Body.Bytes(), &one); w.Code != 200 || err != nil || len(one.Alerts) != 2 || one.Case.ID != "case-dr-eve" {
		t.Fatalf("read: %d %s", w.Code, w.Body)
	}
	for _, a := range one.Alerts {
		if a.CaseID != "case-dr-eve" || a.UserID != "dr-eve" {
			t.Errorf("case holds a foreign alert: %+v", a)
		}
	}
	wantRead := []evSummary{{Interaction: "case-read", Action: "R", Outcome: "0", User: po.UserID, Decision: "permit", Entities: []string{"Case/case-dr-eve"}}}
	if d := cmp.Diff(wantRead, summaries(t, leaves(t, env.db, before))); d != "" {
		t.Errorf("read audit (-want +got):\n%s", d)
	}

	const note = "spoke with dr-eve's head of department"
	before = auditSize(t, env.db)
	w = raw(env.h, &po, "POST", "/fhir/_cases/case-dr-eve/$status", map[string]string{"status": "closed-policy-violation", "note": note}, "Content-Type", "application/json")
	if w.Code != 200 {
		t.Fatalf("status: %d %s", w.Code, w.Body)
	}
	ls := leaves(t, env.db, before)
	for _, l := range ls {
		if strings.Contains(string(l), note) {
			t.Errorf("the note reached the audit log: %s", l)
		}
	}
	wantSet := []evSummary{{Interaction: "case-status", Action: "U", Outcome: "0", User: po.UserID, Decision: "permit", Entities: []string{"Case/case-dr-eve"}}}
	if d := cmp.Diff(wantSet, summaries(t, ls)); d != "" {
		t.Errorf("status audit (-want +got):\n%s", d)
	}
	w = raw(env.h, &po, "GET", "/fhir/_cases?status=closed-policy-violation", nil)
	json.Unmarshal(w.Body.Bytes(), &list)
	if len(list.Cases) != 1 || list.Cases[0].ID != "case-dr-eve" || len(list.Cases[0].Notes) != 1 ||
		list.Cases[0].Notes[0].Note != note || list.Cases[0].Notes[0].By != po.UserID {
		t.Errorf("after the status change: %s", w.Body)
	}

	// A new finding reopens the closed case.
	e := audit.Event{Time: time.Now().Add(48 * time.Hour), Interaction: "break-glass", Action: "E", Outcome: audit.Success, Allowed: true, UserID: "dr-eve", BreakGlass: true}
	if err := env.api.Audit.Record(ctx, &e); err != nil {
		t.Fatal(err)
	}
	if _, err := env.live.Step(ctx); err != nil {
		t.Fatal(err)
	}
	w = raw(env.h, &po, "GET", "/fhir/_cases/case-dr-eve", nil)
	json.Unmarshal(w.Body.Bytes(), &one)
	if one.Case.Status != detect.StatusNew || len(one.Case.Alerts) != 3 || len(one.Case.Notes) != 2 || one.Case.Notes[1].By != "phivault" {
		t.Errorf("a new alert in a closed case: %+v", one.Case)
	}

	bad := []struct {
		name, method, path, body string
		who                      policy.Principal
		status                   int
	}{
		{"unknown status", "POST", "/fhir/_cases/case-dr-eve/$status", `{"status":"done"}`, po, 400},
		{"unknown field", "POST", "/fhir/_cases/case-dr-eve/$status", `{"status":"new","x":1}`, po, 400},
		{"not json", "POST", "/fhir/_cases/case-dr-eve/$status", `{`, po, 400},
		{"bad id", "POST", "/fhir/_cases/dr-eve/$status", `{"status":"new"}`, po, 400},
		{"no such case", "POST", "/fhir/_cases/case-nobody/$status", `{"status":"new"}`, po, 404},
		{"physician sets", "POST", "/fhir/_cases/case-dr-eve/$status", `{"status":"new"}`, doctorMFA, 403},
		{"physician reads", "GET", "/fhir/_cases/case-dr-eve", "", doctorMFA, 403},
		{"physician lists", "GET", "/fhir/_cases", "", doctorMFA, 403},
		{"administrator lists", "GET", "/fhir/_cases", "", officer("administrator"), 403},
		{"no such case read", "GET", "/fhir/_cases/case-nobody", "", po, 404},
		{"bad count", "GET", "/fhir/_cases?_count=0", "", po, 400},
		{"bad status filter", "GET", "/fhir/_cases?status=open", "", po, 400},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			before := auditSize(t, env.db)
			var body any
			if tc.body != "" {
				body = tc.body
			}
			w := raw(env.h, &tc.who, tc.method, tc.path, body, "Content-Type", "application/json")
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if strings.Contains(w.Body.String(), "dr-eve\"") {
				t.Errorf("a refusal shows the case: %s", w.Body)
			}
			ls := leaves(t, env.db, before)
			if len(ls) != 1 || summarize(t, ls[0]).Outcome != "4" {
				t.Errorf("events: %s", ls)
			}
			w = raw(env.h, &po, "GET", "/fhir/_cases/case-dr-eve", nil)
			json.Unmarshal(w.Body.Bytes(), &one)
			if one.Case.Status != detect.StatusNew || len(one.Case.Notes) != 2 {
				t.Errorf("a refused request changed the case: %+v", one.Case)
			}
		})
	}
}

func summaries(t *testing.T, ls [][]byte) []evSummary {
	t.Helper()
	var out []evSummary
	for _, l := range ls {
		out = append(out, summarize(t, l))
	}
	return out
}

// fakeCases adds one case to fakeAlerts for the coverage test; status
// changes append their leaf to db.
type fakeCases struct{ fakeAlerts }

func (f fakeCases) Cases(context.Context, int) ([]*detect.StoredCase, error) {
	return []*detect.StoredCase{{ID: "case-u", UserID: "u", Status: detect.StatusNew, Alerts: []string{"al-0123456789abcdef"}}}, nil
}

func (f fakeCases) Case(_ context.Context, id string) (*detect.StoredCase, []*detect.StoredAlert, error) {
	if id != "case-u" {
		return nil, nil, detect.ErrNoCase
	}
	cs, _ := f.Cases(context.Background(), 0)
	as, _ := f.List(context.Background(), 0)
	return cs[0], as, nil
}

func (f fakeCases) SetCaseStatus(ctx context.Context, id string, n detect.Note, leaf []byte) (*detect.StoredCase, error) {
	if _, _, err := f.Case(ctx, id); err != nil {
		return nil, err
	}
	if _, err := f.Review(ctx, "al-0123456789abcdef", n, leaf); err != nil {
		return nil, err
	}
	return &detect.StoredCase{ID: id, Status: n.Status}, nil
}

// casesCoverageExtra covers the case routes for TestAuditCoverage.
func casesCoverageExtra(t *testing.T, cv *coverage) {
	cv.env.api.Alerts = fakeCases{fakeAlerts{cv.env.db}}
	defer func() { cv.env.api.Alerts = nil }()
	cv.do(admin, "GET", "/fhir/_cases", nil, 200, []evSummary{ev("cases-list", "R", nil)})
	cv.do(admin, "GET", "/fhir/_cases?_count=x", nil, 400, []evSummary{failed("cases-list", "R")})
	cv.do(admin, "GET", "/fhir/_cases/case-u", nil, 200, []evSummary{ev("case-read", "R", nil, "Case/case-u")})
	cv.do(admin, "GET", "/fhir/_cases/case-v", nil, 404, []evSummary{failed("case-read", "R")})
	cv.do(admin, "POST", "/fhir/_cases/case-u/$status", `{"status":"investigating"}`, 200,
		[]evSummary{ev("case-status", "U", nil, "Case/case-u")}, "Content-Type", "application/json")
	cv.do(admin, "POST", "/fhir/_cases/case-v/$status", `{"status":"investigating"}`, 404,
		[]evSummary{failed("case-status", "U")}, "Content-Type", "application/json")
}
