package fhirapi

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/policy"
)

// TestExportLevels: kick-off, poll, manifest and NDJSON download at the
// system, Patient and Group levels, with _type; each exports exactly the
// resources of its scope.
func TestExportLevels(t *testing.T) {
	env := newExportEnv(t, time.Hour)
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/fhir/$export", []string{"Group/g1", "Observation/o1", "Observation/o2", "Patient/p1", "Patient/p2", "Practitioner/pr1"}},
		{"/fhir/$export?_type=Observation,Practitioner&_outputFormat=application/fhir%2Bndjson", []string{"Observation/o1", "Observation/o2", "Practitioner/pr1"}},
		{"/fhir/Patient/$export", []string{"Observation/o1", "Observation/o2", "Patient/p1", "Patient/p2"}},
		{"/fhir/Patient/$export?_type=Patient", []string{"Patient/p1", "Patient/p2"}},
		{"/fhir/Group/g1/$export", []string{"Observation/o2", "Patient/p2"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			m := env.wait(exportAdmin, env.kickoff(exportAdmin, tc.path))
			if !m.RequiresAccessToken || m.Request != testBase+strings.TrimPrefix(tc.path, "/fhir") || len(m.Error) != 0 {
				t.Errorf("manifest = %+v", m)
			}
			if _, err := time.Parse(time.RFC3339Nano, m.TransactionTime); err != nil {
				t.Errorf("transactionTime %q: %v", m.TransactionTime, err)
			}
			got, _ := env.download(exportAdmin, m)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("exported (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExportSince: _since leaves out resources last changed before it.
func TestExportSince(t *testing.T) {
	env := newExportEnv(t, time.Hour)
	time.Sleep(5 * time.Millisecond)
	since := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	env.load(`{"resourceType":"Observation","id":"o1","status":"amended","code":{"text":"a"},"subject":{"reference":"Patient/p1"}}`)
	m := env.wait(exportAdmin, env.kickoff(exportAdmin, "/fhir/$export?_since="+since.Format(time.RFC3339Nano)))
	got, _ := env.download(exportAdmin, m)
	if diff := cmp.Diff([]string{"Observation/o1"}, got); diff != "" {
		t.Errorf("exported (-want +got):\n%s", diff)
	}
}

// TestExportWithheld: a caller allowed only some patients gets only those;
// the rest are counted in an OperationOutcome that names no resource.
func TestExportWithheld(t *testing.T) {
	env := newExportEnv(t, time.Hour)
	m := env.wait(exportLimited, env.kickoff(exportLimited, "/fhir/$export"))
	got, outcomes := env.download(exportLimited, m)
	if diff := cmp.Diff([]string{"Group/g1", "Observation/o1", "Patient/p1", "Practitioner/pr1"}, got); diff != "" {
		t.Errorf("exported (-want +got):\n%s", diff)
	}
	if len(m.Error) != 1 || m.Error[0].Type != "OperationOutcome" || len(outcomes) != 1 ||
		!strings.HasPrefix(outcomes[0], "2 resources were withheld") || strings.Contains(outcomes[0], "p2") || strings.Contains(outcomes[0], "o2") {
		t.Errorf("error files %+v, outcomes %q", m.Error, outcomes)
	}
	// The Group's members are outside the caller's patients: nothing but a count.
	m = env.wait(exportLimited, env.kickoff(exportLimited, "/fhir/Group/g1/$export"))
	if got, outcomes := env.download(exportLimited, m); len(got) != 0 || len(outcomes) != 1 {
		t.Errorf("group export as limited: %v %v", got, outcomes)
	}
	// A caller the policy denies export starts nothing.
	other := policy.Principal{UserID: "nobody", SessionID: "s", Roles: []string{"physician"}, Method: "test"}
	if w := raw(env.h, &other, "GET", "/fhir/$export", nil, async...); w.Code != http.StatusForbidden || len(env.api.exports.jobs) != 2 {
		t.Errorf("denied kick-off: %d, %d jobs", w.Code, len(env.api.exports.jobs))
	}
}

// TestExportOnlyOwner: another user, or the same user in another session,
// gets 404 for the job's status, files and cancel.
func TestExportOnlyOwner(t *testing.T) {
	env := newExportEnv(t, time.Hour)
	status := env.kickoff(exportAdmin, "/fhir/$export?_type=Patient")
	m := env.wait(exportAdmin, status)
	file := "/fhir" + strings.TrimPrefix(m.Output[0].URL, testBase)
	otherUser := policy.Principal{UserID: "admin2", SessionID: "tok-a", Roles: []string{"administrator"}, Method: "test"}
	otherSession := exportAdmin
	otherSession.SessionID = "tok-b"
	for _, who := range []policy.Principal{otherUser, otherSession} {
		for _, r := range [][2]string{{"GET", status}, {"GET", file}, {"DELETE", status}} {
			if w := raw(env.h, &who, r[0], r[1], nil); w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), exportFamily) {
				t.Errorf("%s %s %s as %s/%s: %d %s", r[0], r[1], "", who.UserID, who.SessionID, w.Code, w.Body)
			}
		}
	}
	if got, _ := env.download(exportAdmin, m); len(got) != 2 {
		t.Errorf("the owner lost the export: %v", got)
	}
}

// TestExportNoPlaintextAtRest: after an export, no file in the store's
// directory holds a patient's name, and the export output is sealed.
func TestExportNoPlaintextAtRest(t *testing.T) {
	env := newExportEnv(t, time.Hour)
	m := env.wait(exportAdmin, env.kickoff(exportAdmin, "/fhir/Patient/$export"))
	if got, _ := env.download(exportAdmin, m); len(got) != 4 {
		t.Fatalf("exported %v", got)
	}
	if len(env.exportMeta()) < 2 {
		t.Fatalf("no export output in the store: %v", env.exportMeta())
	}
	scanned := 0
	err := filepath.WalkDir(env.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		scanned += len(b)
		if strings.Contains(strings.ToLower(string(b)), strings.ToLower(exportFamily)) {
			t.Errorf("%s holds a patient's name in plaintext", p)
		}
		return nil
	})
	if err != nil || scanned == 0 {
		t.Fatalf("scan: %v (%d bytes)", err, scanned)
	}
}

// TestExportAudit: the kick-off and every file download are "export"
// events; a download names the patients and resources in the file; if
// the audit append fails, the file is not served.
func TestExportAudit(t *testing.T) {
	env := newExportEnv(t, time.Hour)
	before := auditSize(t, env.fb)
	status := env.kickoff(exportAdmin, "/fhir/Patient/$export?_type=Observation")
	ls := leaves(t, env.fb, before)
	if len(ls) != 1 || summarize(t, ls[0]).Interaction != "export" || summarize(t, ls[0]).Action != "E" {
		t.Fatalf("kick-off events: %s", ls)
	}
	m := env.wait(exportAdmin, status)
	if len(m.Output) != 1 {
		t.Fatalf("manifest %+v", m)
	}
	file := "/fhir" + strings.TrimPrefix(m.Output[0].URL, testBase)

	env.fb.failAudit.Store(true)
	w := raw(env.h, &exportAdmin, "GET", file, nil)
	env.fb.failAudit.Store(false)
	if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "o1") {
		t.Errorf("download with the audit log down: %d %s", w.Code, w.Body)
	}

	before = auditSize(t, env.fb)
	if w := raw(env.h, &exportAdmin, "GET", file, nil); w.Code != http.StatusOK {
		t.Fatalf("download: %d %s", w.Code, w.Body)
	}
	ls = leaves(t, env.fb, before)
	want := evSummary{Interaction: "export", Action: "R", Outcome: "0", User: "admin", Decision: "permit",
		Patients: []string{"p1", "p2"}, Entities: []string{"Observation/o1/_history/1", "Observation/o2/_history/1"}}
	if len(ls) != 1 {
		t.Fatalf("download events: %d", len(ls))
	}
	if diff := cmp.Diff(want, summarize(t, ls[0])); diff != "" {
		t.Errorf("download event (-want +got):\n%s", diff)
	}
}

// TestExportBadKickoff: bad requests get a 400 OperationOutcome and start
// nothing.
func TestExportBadKickoff(t *testing.T) {
	env := newExportEnv(t, time.Hour)
	for _, tc := range []struct {
		path string
		hdr  []string
	}{
		{"/fhir/$export", nil},
		{"/fhir/Patient/$export", []string{"Prefer", "return=minimal"}},
		{"/fhir/$export?_outputFormat=text/csv", async},
		{"/fhir/$export?_type=Bogus", async},
		{"/fhir/$export?_type=Patient,", async},
		{"/fhir/$export?_since=yesterday", async},
		{"/fhir/$export?_typeFilter=Patient%3Factive%3Dtrue", async},
		{"/fhir/Group/bad$id/$export", async},
	} {
		w := raw(env.h, &exportAdmin, "GET", tc.path, nil, tc.hdr...)
		var oo struct{ ResourceType string }
		json.Unmarshal(w.Body.Bytes(), &oo)
		if w.Code != http.StatusBadRequest || oo.ResourceType != "OperationOutcome" || w.Header().Get("Content-Location") != "" {
			t.Errorf("%s %v: %d %s", tc.path, tc.hdr, w.Code, w.Body)
		}
	}
	if w := raw(env.h, &exportAdmin, "GET", "/fhir/Group/missing/$export", nil, async...); w.Code != http.StatusNotFound {
		t.Errorf("unknown group: %d", w.Code)
	}
	if n := len(env.api.exports.jobs); n != 0 || len(env.exportMeta()) != 0 {
		t.Errorf("bad kick-offs left %d jobs, meta %v", n, env.exportMeta())
	}
}

// TestExportCancelAndExpiry: DELETE removes a job and its sealed output;
// a finished job's output is removed when it expires.
func TestExportCancelAndExpiry(t *testing.T) {
	env := newExportEnv(t, 200*time.Millisecond)
	status := env.kickoff(exportAdmin, "/fhir/$export")
	m := env.wait(exportAdmin, status)
	destroyed := func() int {
		ids, err := env.api.Export.Barrier.Destroyed(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}
	shredded := destroyed()
	if w := raw(env.h, &exportAdmin, "DELETE", status, nil); w.Code != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", w.Code, w.Body)
	}
	if n := destroyed(); n != shredded+1 {
		t.Errorf("cancel destroyed %d data keys, want the job's one", n-shredded)
	}
	if w := raw(env.h, &exportAdmin, "GET", status, nil); w.Code != http.StatusNotFound {
		t.Errorf("status after cancel: %d", w.Code)
	}
	if w := raw(env.h, &exportAdmin, "GET", "/fhir"+strings.TrimPrefix(m.Output[0].URL, testBase), nil); w.Code != http.StatusNotFound {
		t.Errorf("file after cancel: %d", w.Code)
	}
	if k := env.exportMeta(); len(k) != 0 {
		t.Errorf("cancel left %v", k)
	}

	status = env.kickoff(exportAdmin, "/fhir/$export")
	env.wait(exportAdmin, status)
	if len(env.exportMeta()) == 0 {
		t.Fatal("no output stored")
	}
	shredded = destroyed()
	time.Sleep(400 * time.Millisecond)
	if n := destroyed(); n != shredded+1 {
		t.Errorf("expiry destroyed %d data keys, want the job's one", n-shredded)
	}
	if w := raw(env.h, &exportAdmin, "GET", status, nil); w.Code != http.StatusNotFound {
		t.Errorf("status after expiry: %d", w.Code)
	}
	if k := env.exportMeta(); len(k) != 0 {
		t.Errorf("expiry left %v", k)
	}
}

// FuzzExportParams: the kick-off parser never panics, and what it accepts
// names only real resource types.
func FuzzExportParams(f *testing.F) {
	f.Add("_type=Patient,Observation&_since=2024-01-01T00:00:00Z", "respond-async")
	f.Add("_outputFormat=ndjson", "respond-async, handling=lenient")
	f.Add("_type=,&_since=", "")
	f.Fuzz(func(t *testing.T, query, prefer string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		p, err := parseExportParams(q, []string{prefer})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %v is not an *Error", err)
			}
			return
		}
		for _, typ := range p.Types {
			if typ == "" || strings.ContainsAny(typ, ", ") {
				t.Fatalf("accepted type %q", typ)
			}
		}
	})
}

// exportCoverageExtra exercises the export routes for TestAuditCoverage,
// on an API with export enabled, recording coverage in cv.
func exportCoverageExtra(t *testing.T, cv *coverage) {
	env := newExportEnv(t, time.Hour)
	xv := &coverage{t: t, env: &testEnv{t: t, api: env.api, db: env.fb, h: env.h}, mux: env.h.(*http.ServeMux), covered: cv.covered}
	adm := exportAdmin
	xv.do(adm, "GET", "/fhir/$export", nil, 202, []evSummary{ev("export", "E", nil)}, async...)
	xv.do(adm, "GET", "/fhir/Group/g1/$export", nil, 202, []evSummary{ev("export", "E", nil, "Group/g1/_history/1")}, async...)
	w := xv.do(adm, "GET", "/fhir/Patient/$export?_type=Patient", nil, 202, []evSummary{ev("export", "E", nil)}, async...)
	status := "/fhir" + strings.TrimPrefix(w.Header().Get("Content-Location"), testBase)
	m := env.wait(adm, status)
	xv.do(adm, "GET", status, nil, 200, []evSummary{ev("export-status", "R", nil)})
	file := "/fhir" + strings.TrimPrefix(m.Output[0].URL, testBase)
	xv.do(adm, "GET", file, nil, 200, []evSummary{ev("export", "R", ps("p1", "p2"), "Patient/p1/_history/1", "Patient/p2/_history/1")})
	xv.do(adm, "DELETE", status, nil, 202, []evSummary{ev("export-cancel", "E", nil)})
	xv.do(adm, "GET", status, nil, 404, []evSummary{failed("export-status", "R")})
	xv.do(adm, "GET", file, nil, 404, []evSummary{failed("export", "R")})
	xv.do(adm, "DELETE", status, nil, 404, []evSummary{failed("export-cancel", "E")})
	xv.do(adm, "GET", "/fhir/$export", nil, 400, []evSummary{failed("export", "E")})
}
