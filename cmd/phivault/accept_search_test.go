package main

// Acceptance tests 1 and 2 of issue 3: a suite of searches over the
// imported Synthea sets, sent over HTTPS to a server on the fixture's data
// directory as a client would send them, whose expected results the test
// computes from the raw bundles (accept_search_model_test.go,
// accept_search_eval_test.go); and paging: walking every next link with
// _count 50 and 7 (and 1 for results of at most pageOneMax) gives exactly
// the matching set, also while resources are being created (in a data
// directory of its own, so that the shared fixture is left as the other
// tests expect it).
// A user relies on a search returning exactly the resources that match,
// in the order asked for, across however many pages.

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAcceptSearch(t *testing.T) {
	fx := syntheaData(t)
	start := time.Now()
	s := serveData(t, fx.dir)
	m := loadModel(t, s.n.records, fx.raw)
	n := 0
	for _, rs := range m.byType {
		n += len(rs)
	}
	t.Logf("model of %d resources from %d raw bundles: %v", n, len(fx.raw), time.Since(start).Round(time.Millisecond))

	now := time.Now()
	st := searchCases(t, m, now, s.base)
	cases := st.cases
	tally := map[string]int{}
	paged := 0
	for _, c := range cases {
		tally[c.cat]++
		if c.pager {
			paged++
		}
		if c.post {
			tally["post"]++
		}
	}
	t.Logf("%d queries: %v; %d walked with _count 1, 7 and 50", len(cases), tally, paged)
	t1 := time.Now()
	parallel(len(cases), runtime.GOMAXPROCS(0), func(i int) { cases[i].expected(m) })
	sizes := map[string]int{}
	for _, c := range cases {
		switch n := len(c.expected(m)); {
		case n == 0:
			sizes["0"]++
			t.Logf("no match expected: %s?%s", c.typ, c.q)
		case n <= 50:
			sizes["1-50"]++
		case n <= 500:
			sizes["51-500"]++
		default:
			sizes[">500"]++
		}
	}
	t.Logf("expected result sizes: %v (computed in %v)", sizes, time.Since(t1).Round(time.Millisecond))
	if len(cases) < 150 || paged < 100 {
		t.Fatalf("the suite has %d queries, %d of them paged; want at least 150 and 100", len(cases), paged)
	}
	// ap depends on the time: a case whose answer would change within the
	// next hour could be flaky, so the suite refuses it.
	for _, c := range cases {
		if strings.Contains(c.q, "=ap") {
			a := len(c.eval(m))
			st.now = now.Add(time.Hour)
			b := len(c.eval(m))
			st.now = now
			if a != b {
				t.Fatalf("%s?%s: the answer changes within an hour (%d, then %d); pick another value", c.typ, c.q, a, b)
			}
		}
	}

	t.Run("Queries", func(t *testing.T) {
		t0 := time.Now()
		took := make([]time.Duration, len(cases))
		parallel(len(cases), 4, func(i int) {
			c, t1 := cases[i], time.Now()
			for _, e := range runCase(s, m, c) {
				t.Errorf("%s[%s] %s?%s: %s", c.bugNote(), c.cat, c.typ, c.q, e)
			}
			took[i] = time.Since(t1)
		})
		t.Logf("%d queries in %v", len(cases), time.Since(t0).Round(time.Millisecond))
		order := make([]int, len(cases))
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool { return took[order[a]] > took[order[b]] })
		for _, i := range order[:5] {
			t.Logf("slowest: %v %s?%s", took[i].Round(time.Millisecond), cases[i].typ, cases[i].q)
		}
	})
	t.Run("Paging", func(t *testing.T) { pagingWalks(t, s, m, cases) })
	t.Run("PagingWhileCreating", func(t *testing.T) { creatingWalks(t, smartFiles(fx.raw, 8)) })
	t.Logf("search acceptance after the fixture: %v", time.Since(start).Round(time.Millisecond))
}

// smartFiles returns n patient bundles of the SMART set (which refer to
// nothing outside themselves).
func smartFiles(raw []string, n int) []string {
	var out []string
	for _, f := range raw {
		if strings.Contains(f, "smart-generated") && len(out) < n {
			out = append(out, f)
		}
	}
	return out
}

// searchCase is one query of the suite and how to compute its answer.
type searchCase struct {
	cat   string // category, for the tally
	typ   string
	q     string                // the query string as sent (encoded)
	match func(r *res) bool     // decides each resource of typ in the model
	incl  func(r *res) []string // the Type/id keys a match must bring in by _include/_revinclude
	order func(a, b *res) int   // the order asked for by _sort (ties in any order)
	count bool                  // _summary=count: only the total
	post  bool                  // also sent as POST _search with a form body
	pager bool                  // walked with _count 1, 7 and 50 (see TestAcceptSearch)

	bug string // a known server bug this case shows, named in its failures

	once sync.Once
	want []*res
}

func (c *searchCase) bugNote() string {
	if c.bug == "" {
		return ""
	}
	return "SERVER BUG (" + c.bug + ") "
}

// expected evaluates a case over the model (once: the cases are fixed
// before any runs, except that the ap check below changes the time).
func (c *searchCase) expected(m *model) []*res {
	c.once.Do(func() { c.want = c.eval(m) })
	return c.want
}

func (c *searchCase) eval(m *model) []*res {
	var out []*res
	for _, r := range m.byType[c.typ] {
		if c.match(r) {
			out = append(out, r)
		}
	}
	return out
}

// checkWalk compares a walk with the expected matches: the same set, each
// once, in the order asked for; the included set; and every total given.
func checkWalk(m *model, c *searchCase, w *walk, want []*res, label string) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(label+": "+f, a...)) }
	wantSet := map[string]bool{}
	for _, r := range want {
		wantSet[r.key()] = true
	}
	seen := map[string]int{}
	var extra, dup []string
	for _, k := range w.matches {
		if seen[k]++; seen[k] == 2 {
			dup = append(dup, k)
		}
		if !wantSet[k] {
			extra = append(extra, k)
		}
	}
	var missing []string
	for k := range wantSet {
		if seen[k] == 0 {
			missing = append(missing, k)
		}
	}
	if len(extra)+len(missing)+len(dup) > 0 {
		bad("got %d matches (%d distinct), want %d: %d unexpected %s, %d missing %s, %d duplicated %s",
			len(w.matches), len(seen), len(want), len(extra), few(extra), len(missing), few(missing), len(dup), few(dup))
	}
	for i, t := range w.totals {
		if t == nil && strings.Contains(c.q, "_total=accurate") {
			bad("page %d has no total under _total=accurate", i+1)
		}
		if t != nil && *t != len(want) {
			bad("page %d gives total %d, want %d", i+1, *t, len(want))
		}
	}
	if c.order != nil {
		for i := 1; i < len(w.matches); i++ {
			a, b := m.byKey[w.matches[i-1]], m.byKey[w.matches[i]]
			if a != nil && b != nil && c.order(a, b) > 0 {
				bad("%s comes after %s, against the _sort order (position %d)", b.key(), a.key(), i)
				break
			}
		}
	}
	if c.incl != nil {
		wantIncl := map[string]bool{}
		for _, r := range want {
			for _, k := range c.incl(r) {
				wantIncl[k] = true
			}
		}
		var missing, extra []string
		for k := range wantIncl {
			if !w.incl[k] {
				missing = append(missing, k)
			}
		}
		for k := range w.incl {
			if !wantIncl[k] {
				extra = append(extra, k)
			}
		}
		if len(missing)+len(extra) > 0 {
			bad("included %d, want %d: %d unexpected %s, %d missing %s", len(w.incl), len(wantIncl), len(extra), few(extra), len(missing), few(missing))
		}
	}
	return errs
}

func few(ks []string) string {
	sort.Strings(ks)
	if len(ks) > 4 {
		return fmt.Sprint(ks[:4], "...")
	}
	return fmt.Sprint(ks)
}

// runCase sends one case as the suite does: the whole result in pages of
// 500 (and as POST _search when asked), or only the count.
func runCase(s *testServer, m *model, c *searchCase) []string {
	want := c.expected(m)
	if c.count {
		p, err := s.fetch(http.MethodGet, s.base+"/"+c.typ+"?"+c.q, "")
		switch {
		case err != nil:
			return []string{err.Error()}
		case p.Total == nil || *p.Total != len(want) || len(p.Entry) > 0:
			return []string{fmt.Sprintf("_summary=count gives total %v and %d entries, want total %d and none", deref(p.Total), len(p.Entry), len(want))}
		}
		return nil
	}
	w, err := s.walkSearch(http.MethodGet, c.typ, c.q+"&_count=500", nil)
	if err != nil {
		return []string{err.Error()}
	}
	errs := checkWalk(m, c, w, want, "GET")
	if c.post {
		pw, err := s.walkSearch(http.MethodPost, c.typ, c.q+"&_count=500", nil)
		if err != nil {
			return append(errs, err.Error())
		}
		errs = append(errs, checkWalk(m, c, pw, want, "POST _search")...)
		if !slices.Equal(pw.matches, w.matches) && c.order != nil {
			errs = append(errs, "POST _search returns another order than GET")
		}
	}
	return errs
}

func deref(p *int) any {
	if p == nil {
		return "none"
	}
	return *p
}
