package main

// Paging walks of the search suite: every paged query with _count 50 and
// 7, and with _count 1 when its result holds at most pageOneMax resources
// (to keep the cost bounded); and walks while resources are created, on a
// data directory of its own.

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pageOneMax is the largest result walked one resource at a time.
const pageOneMax = 50

func pagingWalks(t *testing.T, s *testServer, m *model, cases []*searchCase) {
	type job struct {
		c     *searchCase
		count int
		want  []*res
	}
	var jobs []job
	ones := 0
	for _, c := range cases {
		if !c.pager || c.count {
			continue
		}
		want := c.expected(m)
		jobs = append(jobs, job{c, 50, want}, job{c, 7, want})
		if len(want) <= pageOneMax {
			jobs = append(jobs, job{c, 1, want})
			ones++
		}
	}
	t0 := time.Now()
	var pages atomic.Int64
	parallel(len(jobs), 4, func(i int) {
		j := jobs[i]
		w, err := s.walkSearch(http.MethodGet, j.c.typ, j.c.q+"&_count="+strconv.Itoa(j.count), nil)
		if err != nil {
			t.Errorf("[%s] %s?%s with _count=%d: %v", j.c.cat, j.c.typ, j.c.q, j.count, err)
			return
		}
		pages.Add(int64(w.pages))
		for _, e := range checkWalk(m, j.c, w, j.want, "_count="+strconv.Itoa(j.count)) {
			t.Errorf("%s[%s] %s?%s: %s", j.c.bugNote(), j.c.cat, j.c.typ, j.c.q, e)
		}
		if want := max(1, (len(j.want)+j.count-1)/j.count); w.pages != want && w.pages != want+1 {
			t.Errorf("%s[%s] %s?%s: %d pages of %d for %d matches", j.c.bugNote(), j.c.cat, j.c.typ, j.c.q, w.pages, j.count, len(j.want))
		}
	})
	t.Logf("%d walks (%d queries with _count 50 and 7, %d of them also with _count 1), %d pages, in %v",
		len(jobs), (len(jobs)-ones)/2, ones, pages.Load(), time.Since(t0).Round(time.Millisecond))
}

// create POSTs a resource and returns its Type/id.
func (s *testServer) create(res map[string]any) (string, error) {
	b, _ := json.Marshal(res)
	typ := res["resourceType"].(string)
	st, body, err := s.do(http.MethodPost, typ, b)
	if err != nil {
		return "", err
	}
	var out struct{ ID string }
	if st != http.StatusCreated || json.Unmarshal(body, &out) != nil || out.ID == "" {
		return "", fmt.Errorf("POST %s: %d %.300s", typ, st, body)
	}
	return typ + "/" + out.ID, nil
}

// creatingWalks walks queries while resources that match them are being
// created: every resource that matched before the walk must come exactly
// once, nothing twice, and nothing that is neither an old match nor new.
// It also checks number search, which no Synthea resource carries, on
// RiskAssessments it creates. So as to leave the shared fixture as the
// other tests expect it, it works on a data directory of its own, into
// which `phivault import` loads a few of the Synthea bundles.
func creatingWalks(t *testing.T, files []string) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	if code := run(append([]string{"import", "--data", dir}, files...), &stdout, &stderr); code != exitOK {
		t.Fatalf("import: exit %d\n%.2000s\n%.2000s", code, stdout.String(), stderr.String())
	}
	s := serveData(t, dir)
	m := loadModel(t, s.n.records, files)
	st := &suite{t: t, m: m, now: time.Now()}
	p := st.patient(40, 400, 4, 0)
	subj := "Patient/" + p.id
	fam := pFamily(p)[0]
	obs := func(i int) map[string]any {
		return map[string]any{"resourceType": "Observation", "status": "final",
			"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "29463-7"}}},
			"subject":           map[string]any{"reference": subj},
			"effectiveDateTime": time.Date(2000+i%30, time.Month(1+i%12), 1+i%28, 0, 0, 0, 0, time.UTC).Format(time.RFC3339),
			"valueQuantity":     map[string]any{"value": 50 + i, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
	}
	pat := func(i int) map[string]any {
		return map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": fam, "given": []any{"Walk" + strconv.Itoa(i)}}},
			"birthDate": fmt.Sprintf("%04d-01-01", 1930+i%80)}
	}
	walks := []struct {
		typ, q string
		match  func(*res) bool
		order  func(a, b *res) int
		make   func(i int) map[string]any
		count  int
	}{
		{"Observation", enc("subject", subj, "code", "29463-7"), func(r *res) bool { return hasRef(r, "subject", subj) && tokenMatch(obsCode(r), "", "29463-7") }, nil, obs, 1},
		{"Observation", enc("subject", subj, "code", "29463-7", "_sort", "-date"), func(r *res) bool { return hasRef(r, "subject", subj) && tokenMatch(obsCode(r), "", "29463-7") }, dateOrder(obsDate, true), obs, 1},
		{"Observation", enc("subject", subj, "_sort", "date"), func(r *res) bool { return hasRef(r, "subject", subj) }, dateOrder(obsDate, false), obs, 7},
		{"Observation", enc("patient", p.id), func(r *res) bool { return hasRef(r, "subject", subj) }, nil, obs, 7},
		{"Patient", enc("family", fam), func(r *res) bool { return strMatch(pFamily(r), "", fam) }, nil, pat, 1},
		{"Patient", enc("family", fam, "_sort", "-birthdate"), func(r *res) bool { return strMatch(pFamily(r), "", fam) }, dateOrder(pBirth, true), pat, 1},
		{"Patient", enc("name", lower3(fam), "_sort", "family"), func(r *res) bool { return strMatch(pName(r), "", lower3(fam)) }, stringOrder(pFamily, false), pat, 7},
	}
	var mu sync.Mutex
	created := map[string]bool{}
	n := 0
	for _, wk := range walks {
		c := &searchCase{typ: wk.typ, q: wk.q, match: wk.match, order: wk.order}
		want := c.expected(m)
		// A writer creates matching resources all through the walk, and
		// the walk itself adds one between pages.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				mu.Lock()
				n++
				i := n
				mu.Unlock()
				k, err := s.create(wk.make(i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				created[k] = true
				mu.Unlock()
			}
		}()
		w, err := s.walkSearch(http.MethodGet, wk.typ, wk.q+"&_count="+strconv.Itoa(wk.count), func() {
			mu.Lock()
			n++
			i := n
			mu.Unlock()
			if k, err := s.create(wk.make(i)); err == nil {
				mu.Lock()
				created[k] = true
				mu.Unlock()
			}
		})
		close(stop)
		wg.Wait()
		if err != nil {
			t.Errorf("%s?%s: %v", wk.typ, wk.q, err)
			continue
		}
		wantSet := keySet(want)
		seen := map[string]int{}
		var bad []string
		for _, k := range w.matches {
			seen[k]++
			mu.Lock()
			isNew := created[k]
			mu.Unlock()
			switch {
			case seen[k] > 1:
				bad = append(bad, "duplicated "+k)
			case !wantSet[k] && !isNew:
				bad = append(bad, "unexpected "+k)
			}
		}
		for k := range wantSet {
			if seen[k] == 0 {
				bad = append(bad, "missing "+k)
			}
		}
		if wk.order != nil {
			// The old matches keep their order among themselves.
			var old []string
			for _, k := range w.matches {
				if wantSet[k] {
					old = append(old, k)
				}
			}
			for i := 1; i < len(old); i++ {
				if wk.order(m.byKey[old[i-1]], m.byKey[old[i]]) > 0 {
					bad = append(bad, fmt.Sprintf("%s after %s against the sort", old[i], old[i-1]))
					break
				}
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s?%s with _count=%d while creating: %d problems: %s", wk.typ, wk.q, wk.count, len(bad), few(bad))
		}
		t.Logf("%s?%s, _count=%d: %d pages, %d of %d old matches, %d new seen", wk.typ, wk.q, wk.count, w.pages, len(w.matches)-newCount(w.matches, wantSet), len(want), newCount(w.matches, wantSet))
	}
	numberCases(t, s, subj)
}

func newCount(ks []string, old map[string]bool) int {
	n := 0
	for _, k := range ks {
		if !old[k] {
			n++
		}
	}
	return n
}

// numberCases checks number search (prefixes and implicit precision) on
// RiskAssessment.prediction.probability, over resources it creates.
func numberCases(t *testing.T, s *testServer, subj string) {
	values := []string{"0.05", "0.1", "0.123", "0.25", "0.5", "0.75", "0.95", "0.001"}
	byKey := map[string]string{}
	for _, v := range values {
		res := map[string]any{"resourceType": "RiskAssessment", "status": "final", "subject": map[string]any{"reference": subj},
			"prediction": []any{map[string]any{"probabilityDecimal": json.Number(v)}}}
		k, err := s.create(res)
		if err != nil {
			t.Fatal(err)
		}
		byKey[k] = v
	}
	for _, q := range []string{"0.5", "0.1", "0.12", "0.123", "gt0.3", "lt0.1", "ge0.25", "le0.1", "ap0.5", "ne0.5", "sa0.9", "eb0.1", "0.001", "0.1,0.95", "gt0.2&probability=lt0.6"} {
		var want []string
		for k, v := range byKey {
			f, _ := new(big.Rat).SetString(v)
			ok := true
			for _, part := range strings.Split(q, "&probability=") {
				hit := false
				for _, alt := range strings.Split(part, ",") {
					op, n := prefixOf(alt)
					x, half := numRange(n)
					hit = hit || numOne(op, x, half, f)
				}
				ok = ok && hit
			}
			if ok {
				want = append(want, k)
			}
		}
		qs := "subject=" + subj + "&probability=" + strings.ReplaceAll(q, ",", "%2C")
		w, err := s.walkSearch(http.MethodGet, "RiskAssessment", qs, nil)
		if err != nil {
			t.Errorf("RiskAssessment?%s: %v", qs, err)
			continue
		}
		got := map[string]bool{}
		for _, k := range w.matches {
			got[k] = true
		}
		wantSet := map[string]bool{}
		for _, k := range want {
			wantSet[k] = true
		}
		if len(got) != len(wantSet) || len(w.matches) != len(want) {
			t.Errorf("[number] RiskAssessment?%s: got %v, want %v", qs, valuesOf(got, byKey), valuesOf(wantSet, byKey))
			continue
		}
		for k := range wantSet {
			if !got[k] {
				t.Errorf("[number] RiskAssessment?%s: got %v, want %v", qs, valuesOf(got, byKey), valuesOf(wantSet, byKey))
				break
			}
		}
	}
}

func valuesOf(ks map[string]bool, byKey map[string]string) []string {
	var out []string
	for k := range ks {
		out = append(out, byKey[k])
	}
	return out
}
