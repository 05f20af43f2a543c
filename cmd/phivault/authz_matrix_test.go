package main

// TestAuthzMatrix runs every cell of the authorization matrix
// (internal/policy/testdata/matrix.csv, issue 6 acceptance 1) against the
// running server: serve's wiring (FHIR API, bearer tokens for accounts,
// console sessions with TOTP and break-the-glass, device mTLS, the Cedar
// engine over care relationships and consents read from the stored data),
// over HTTPS, with zero unexpected allows and zero unexpected denies.
//
// The matrix columns:
//
//	role          who asks: one account per role (workforce roles act as
//	              their own Practitioner; patients are their own Patient),
//	              the device (mTLS certificate) and the local operator
//	action        read, search, create, update, delete, export, audit-read, admin
//	kind          patient-clinical (Observation), patient-demographics
//	              (Patient), financial (Claim), reference (Practitioner),
//	              audit-log (the audit log; a patient's own access report),
//	              monitoring-case (GET /fhir/_cases, the live detector's cases),
//	              audit-search (GET /fhir/AuditEvent?patient=...), disclosures
//	              (GET /fhir/Patient/{id}/$disclosures; a patient's own if self)
//	              and configuration (the admin action)
//	relationship  none, careteam (the caller's Practitioner is on an active
//	              CareTeam about the patient) or, for patients, self
//	consent       none, deny (an active patient-privacy Consent denying
//	              everyone) or permit-research (permit for purpose HRESCH)
//	break_glass   no, active (a window opened through POST /breakglass with
//	              the password and a fresh TOTP code), expired (the clock
//	              moved 70 minutes on while the session stayed in use)
//	purpose       the X-Purpose-Of-Use header (v3 ActReason code)
//	expected      allow (2xx; for search: the target is in the bundle) or
//	              deny (403; for search: 403 or the target absent)
//
// Adding a row: the rows come from internal/policy/matrix_gen.go, whose
// plain rules give the expected column; edit them and run
// `go generate ./internal/policy`. A value this test does not know how to
// drive fails the test (see mxPlan) rather than being dropped; rows it
// cannot drive over HTTPS are listed in the log with the reason.

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// mxRow is one cell of matrix.csv.
type mxRow struct {
	line                                                int
	role, action, kind, rel, consent, bg, purpose, want string
}

func (r mxRow) String() string {
	return fmt.Sprintf("line %d %s %s %s rel=%s consent=%s bg=%s %s", r.line, r.role, r.action, r.kind, r.rel, r.consent, r.bg, r.purpose)
}

func mxReadMatrix(t *testing.T) []mxRow {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "internal", "policy", "testdata", "matrix.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 2 || strings.Join(recs[0], ",") != "role,action,kind,relationship,consent,break_glass,purpose,expected" {
		t.Fatalf("matrix.csv has an unknown header %v", recs[0])
	}
	var rows []mxRow
	for i, r := range recs[1:] {
		rows = append(rows, mxRow{i + 2, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]})
	}
	return rows
}

// mxResult is what the server answered to one cell.
type mxResult struct {
	c       mxCell
	allowed bool
	status  int
	err     error
}

// exec performs the cell with its caller's credential.
func (e *mxEnv) exec(c mxCell, browsers map[string]*mxBrowser) mxResult {
	if c.export {
		return e.execExport(c)
	}
	res := mxResult{c: c}
	if c.setup != nil {
		b, _ := json.Marshal(c.setup)
		st, body, err := e.send(e.client, http.MethodPut, e.origin+"/fhir"+c.path, e.operator, "TREAT", b)
		if err != nil || st/100 != 2 {
			res.err = fmt.Errorf("storing the target as the operator: %d %v %.200s", st, err, body)
			return res
		}
	}
	client, base, bearer := e.client, e.origin+"/fhir", e.tokens[c.who]
	switch {
	case c.who == "operator":
		bearer = e.operator
	case c.who == "device":
		client, base, bearer = e.device, e.origin+"/device/fhir", ""
		if c.noCred {
			base = e.origin
		}
	case c.session:
		client, bearer = browsers[c.who].c, ""
	}
	if c.root {
		base = e.origin
	}
	st, body, err := e.send(client, c.method, base+c.path, bearer, c.row.purpose, c.body)
	res.status = st
	switch {
	case err != nil:
		res.err = err
	case st == http.StatusForbidden:
	case st == http.StatusUnauthorized && c.noCred:
	case st/100 == 2 && c.find != "":
		var b struct {
			Entry []struct {
				Resource struct{ ID string } `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			res.err = fmt.Errorf("search answered a body that is not a Bundle: %v", err)
		}
		for _, en := range b.Entry {
			res.allowed = res.allowed || en.Resource.ID == c.find
		}
	case st/100 == 2:
		res.allowed = true
	default:
		res.err = fmt.Errorf("status %d (want 2xx or 403): %.200s", st, body)
	}
	return res
}

func TestAuthzMatrix(t *testing.T) {
	start := time.Now()
	rows := mxReadMatrix(t)
	e := newMxEnv(t)
	// Export: system and patient level bulk export ($export). Until one
	// answers, the export rows are listed as not run; once one does, they
	// fail until mxPlan drives them.
	exportRoute := false
	for _, p := range []string{"/fhir/$export", "/fhir/Patient/$export"} {
		st, body, err := e.send(e.client, http.MethodGet, e.origin+p, e.operator, "TREAT", nil)
		if err != nil {
			t.Fatal(err)
		}
		// 400: $export is taken for a resource id (GET /fhir/Patient/{id}),
		// unless it asks for the Prefer: respond-async an export requires.
		exportRoute = exportRoute || (st != http.StatusNotFound && st != http.StatusBadRequest) ||
			(st == http.StatusBadRequest && strings.Contains(string(body), "respond-async"))
	}

	var cells []mxCell
	var skipped []string
	skipWhy := map[string]int{}
	for _, r := range rows {
		c, skip, err := e.mxPlan(r, exportRoute)
		switch {
		case err != nil:
			t.Errorf("%v: %v", r, err)
		case skip != "":
			skipped = append(skipped, fmt.Sprintf("%v (expected %s): %s", r, r.want, skip))
			skipWhy[skip]++
		default:
			cells = append(cells, c)
		}
	}
	if len(cells)+len(skipped) != len(rows) {
		t.Fatalf("%d rows, %d planned, %d skipped", len(rows), len(cells), len(skipped))
	}
	setupTime := time.Since(start)

	var results []mxResult
	run := func(phase int, browsers map[string]*mxBrowser) {
		var mu sync.Mutex
		work := make(chan mxCell)
		var wg sync.WaitGroup
		workers := 12
		if phase == mxLast {
			workers = 1
		}
		for range workers {
			wg.Go(func() {
				for c := range work {
					r := e.exec(c, browsers)
					mu.Lock()
					results = append(results, r)
					mu.Unlock()
				}
			})
		}
		for _, c := range cells {
			if c.phase() == phase {
				work <- c
			}
		}
		close(work)
		wg.Wait()
	}
	run(mxBearer, nil)

	// Console sessions: sign in through the pages, move past the TOTP
	// step used, open break-the-glass with the step-up.
	browsers := map[string]*mxBrowser{}
	for _, c := range cells {
		if c.session && browsers[c.who] == nil {
			browsers[c.who] = e.browser(c.who)
		}
	}
	users := make([]string, 0, len(browsers))
	for u := range browsers {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		if err := browsers[u].signIn(); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(31 * time.Second)
	for _, u := range users {
		if err := browsers[u].breakGlass(); err != nil {
			t.Fatal(err)
		}
	}
	run(mxActive, browsers)
	// 70 minutes in steps of 10, the sessions in use meanwhile (15
	// minutes idle would end them): the 60-minute windows expire.
	for range 7 {
		e.clock.Advance(10 * time.Minute)
		for _, u := range users {
			if err := browsers[u].touch(); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(mxExpired, browsers)
	run(mxLast, nil)

	mxReport(t, rows, results, skipped, skipWhy, setupTime, time.Since(start))
}

// mxReport logs what was run and skipped and fails with a table of every
// cell whose answer differs from the expected column.
func mxReport(t *testing.T, rows []mxRow, results []mxResult, skipped []string, skipWhy map[string]int, setup, total time.Duration) {
	sort.Slice(results, func(i, j int) bool { return results[i].c.row.line < results[j].c.row.line })
	var uAllow, uDeny, errs, allowed int
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LINE\tROLE\tACTION\tKIND\tREL\tCONSENT\tBG\tPURPOSE\tEXPECTED\tGOT\tREQUEST")
	notes := map[string]int{}
	for _, r := range results {
		row := r.c.row
		for _, n := range r.c.notes {
			notes[n]++
		}
		got := "deny"
		if r.allowed {
			got = "allow"
			allowed++
		}
		switch {
		case r.err != nil:
			errs++
			got = "error: " + r.err.Error()
		case row.want == got:
			continue
		case r.allowed:
			uAllow++
		default:
			uDeny++
		}
		how := "bearer token"
		switch {
		case r.c.session:
			how = "console session"
		case r.c.who == "device":
			how = "client certificate"
		case r.c.who == "operator":
			how = "operator token"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s (%d)\t%s %s as %s by %s\n", row.line, row.role, row.action, row.kind,
			row.rel, row.consent, row.bg, row.purpose, row.want, got, r.status, r.c.method, r.c.path, r.c.who, how)
	}
	tw.Flush()
	for why, n := range skipWhy {
		t.Logf("%d rows not run: %s", n, why)
	}
	for _, s := range skipped {
		t.Logf("not run: %s", s)
	}
	for note, n := range notes {
		t.Logf("%d rows mapped: %s", n, note)
	}
	t.Logf("%d matrix rows: %d run against the server (%d allowed, %d denied), %d not run; %d unexpected allows, %d unexpected denies, %d errors (setup %v, total %v)",
		len(rows), len(results), allowed, len(results)-allowed, len(skipped), uAllow, uDeny, errs, setup.Round(time.Millisecond), total.Round(time.Millisecond))
	if uAllow+uDeny+errs > 0 {
		t.Errorf("%d unexpected allows, %d unexpected denies, %d errors:\n%s", uAllow, uDeny, errs, table.String())
	}
}
