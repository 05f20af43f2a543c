package search

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// TestDateWalk: pages sorted by a date, read year by year, are exactly the
// pages of the full scan (_total=accurate takes it), page after page, both
// ways, with exact filters and with resources hidden from the caller; over
// values of every shape: instants, days, months, years, periods open on
// either side, periods wider than the year buckets, dates before 1900 and
// after 2099, and no date at all.
func TestDateWalk(t *testing.T) {
	e := newEnv(t)
	r := rand.New(rand.NewPCG(7, 7))
	day := func() time.Time {
		return time.Date(1880+r.IntN(240), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), 0, 0, time.UTC)
	}
	var data []map[string]any
	for i := range 150 {
		o := map[string]any{"resourceType": "Observation", "id": fmt.Sprintf("w%03d", i), "status": "final",
			"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": []string{"a", "b"}[i%2]}}},
			"subject": map[string]any{"reference": "Patient/p1"}}
		d := day()
		switch r.IntN(9) {
		case 0:
			o["effectiveDateTime"] = d.Format(time.RFC3339)
		case 1:
			o["effectiveDateTime"] = d.Format("2006-01-02")
		case 2:
			o["effectiveDateTime"] = d.Format("2006-01")
		case 3:
			o["effectiveDateTime"] = d.Format("2006")
		case 4:
			o["effectivePeriod"] = map[string]any{"start": d.Format(time.RFC3339), "end": d.AddDate(0, r.IntN(30), r.IntN(40)).Format(time.RFC3339)}
		case 5:
			o["effectivePeriod"] = map[string]any{"start": d.Format("2006-01-02")} // open end
		case 6:
			o["effectivePeriod"] = map[string]any{"end": d.Format("2006-01-02")} // open start
		case 7:
			o["effectivePeriod"] = map[string]any{"start": d.Format("2006"), "end": d.AddDate(40+r.IntN(80), 0, 0).Format("2006")} // wide
		case 8: // no date
		}
		if i%17 == 0 {
			o["effectiveDateTime"] = time.Date(2024, 5, 5, 0, 0, 0, 0, time.UTC).Format("2006-01-02") // ties
			delete(o, "effectivePeriod")
		}
		data = append(data, o)
	}
	e.load(data...)
	hidden := func(id string) bool { return id[len(id)-1] == '3' }
	ctx := context.Background()
	pages := func(q url.Values, visible bool) [][]string {
		var out [][]string
		req := fhirapi.SearchRequest{Type: "Observation", Query: q}
		if visible {
			req.Visible = func(_ context.Context, en records.Entry) bool { return !hidden(en.ID) }
		}
		for i := 0; ; i++ {
			p, err := e.eng.Search(ctx, req)
			if err != nil {
				t.Fatalf("%v: %v", req.Query, err)
			}
			var ids []string
			for _, m := range p.Matches {
				ids = append(ids, m.ID)
			}
			out = append(out, ids)
			if p.Next == "" || i > 500 {
				return out
			}
			if req.Query, err = url.ParseQuery(p.Next); err != nil {
				t.Fatal(err)
			}
		}
	}
	queries := []string{
		"_sort=-date", "_sort=date", "_sort=-date,_id", "_sort=date,-code",
		"_sort=-date&code=a", "_sort=date&code:not=a",
		"_sort=-date&date=ge1990-03-04", "_sort=date&date=lt2001&date=gt1950", "_sort=-date&date=sa2030-01-01T00:00:00Z",
		"_sort=-date&date:missing=false", "_sort=date&patient=p1",
	}
	for qi, qs := range queries {
		// Small pages cost a full scan each on the reference side: the
		// smallest run on a few queries, and under -short on fewer.
		counts := []int{50}
		if qi < 2 || !testing.Short() {
			counts = append(counts, 200) // a page that holds every candidate
		}
		if qi < 4 || !testing.Short() {
			counts = append(counts, 7)
		}
		if qi < 3 && !testing.Short() {
			counts = append(counts, 1, 3)
		}
		for _, count := range counts {
			for _, visible := range []bool{false, true} {
				q, _ := url.ParseQuery(fmt.Sprintf("%s&_count=%d", qs, count))
				full := url.Values{}
				for k, v := range q {
					full[k] = v
				}
				full.Set("_total", "accurate")
				got, want := pages(q, visible), pages(full, visible)
				if !slices.EqualFunc(got, want, slices.Equal) {
					t.Errorf("%s _count=%d visible=%v: the year walk's pages differ from the full scan's\n got %v\nwant %v", qs, count, visible, got, want)
				}
				if visible {
					for _, p := range got {
						for _, id := range p {
							if hidden(id) {
								t.Fatalf("%s: hidden %s returned", qs, id)
							}
						}
					}
				}
			}
		}
	}
}

// TestYearTokensFollowKey: the cached year tokens are the ones the index
// key computes now: a sealed barrier (whose tokens match nothing) gets its
// own, and reopening it brings the keyed ones back.
func TestYearTokensFollowKey(t *testing.T) {
	e := newEnv(t)
	fresh := func() []store.Token { return e.eng.computeYearTokens("Observation", "date") }
	same := func(a, b store.Token) bool { return bytes.Equal(a, b) }
	keyed := e.eng.yearTokens("Observation", "date")
	if !slices.EqualFunc(keyed, fresh(), same) {
		t.Fatal("yearTokens differs from the tokens computed")
	}
	e.b.Close()
	sealed := e.eng.yearTokens("Observation", "date")
	if !slices.EqualFunc(sealed, fresh(), same) || bytes.Equal(sealed[0], keyed[0]) {
		t.Error("a sealed barrier was given the cached keyed tokens")
	}
	if err := e.b.Reopen(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.eng.yearTokens("Observation", "date"); !slices.EqualFunc(got, keyed, same) {
		t.Error("after reopening, the year tokens are not the keyed ones")
	}
}

// TestDateSortFollowsUpdates: the date values a sorted search ordered a
// version by are remembered (decide), and an update that moves a
// resource's date moves it in the next search: from last to first, and
// out of a date-range filter.
func TestDateSortFollowsUpdates(t *testing.T) {
	e := newEnv(t)
	obs := func(id, date string) map[string]any {
		return map[string]any{"resourceType": "Observation", "id": id, "status": "final",
			"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "a"}}},
			"subject":           map[string]any{"reference": "Patient/p1"},
			"effectiveDateTime": date}
	}
	for i := range 30 {
		e.put(obs(fmt.Sprintf("u%02d", i), fmt.Sprintf("2020-01-%02d", i+1)))
	}
	const q = "Observation?patient=p1&_sort=-date&_count=5"
	for range 2 { // the second search reads what the first remembered
		if got := e.get(q).matches; !slices.Equal(got, []string{"Observation/u29", "Observation/u28", "Observation/u27", "Observation/u26", "Observation/u25"}) {
			t.Fatalf("before the update: %v", got)
		}
	}
	e.put(obs("u00", "2021-06-01"))
	if got := e.get(q).matches; len(got) == 0 || got[0] != "Observation/u00" {
		t.Fatalf("after u00 moved to 2021: %v", got)
	}
	const ranged = "Observation?patient=p1&date=lt2020-01-03&_sort=date&_count=5"
	if got := e.get(ranged).matches; !slices.Equal(got, []string{"Observation/u01"}) {
		t.Fatalf("before 2020-01-03, after u00 moved: %v", got)
	}
}
