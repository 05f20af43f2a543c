package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault/bench/internal/loadgen"
)

// The search workloads (issue 3, acceptance point 5). Each draws its
// parameters from what the server really holds, found once through the
// types' history before measuring, so every query has matches:
//
//	search-patient  Observation?patient=X&category=laboratory&_sort=-date&_count=20
//	                (X: patients with at least one laboratory Observation)
//	search-date     Observation?date=geY-M-01&date=ltY-M+1-01&_count=20
//	                (months holding at least a page of Observations, all patients)
//	search-chain    Observation?subject:Patient.family=F&_count=20
//	                (F: families of existing patients)
//	search-include  Encounter?patient=X&_include=Encounter:participant&_count=20
//	                (X: patients with Encounters)
//
// An answer counts only if it is a 200 searchset with at least one match
// (and, for search-include, at least one included resource) and no more
// than _count matches. The check is on the bytes (the server writes compact
// JSON), so the load tool does not spend a core decoding bundles.

// searchPage is the _count of every search workload.
const searchPage = 20

// searchWorkloads lists the workload names this file serves.
var searchWorkloads = []string{"search-patient", "search-date", "search-chain", "search-include"}

// population is what the search workloads draw their parameters from.
type population struct {
	labPatients []string // Patient ids with >= 1 laboratory Observation
	encPatients []string // Patient ids with >= 1 Encounter with a participant
	months      []string // "2019-01": months holding >= searchPage Observations
	families    []string // distinct family names of existing Patients
}

// loadPopulation reads every current Patient, Observation and Encounter
// through type history (once per run of the tool) and prints what it found.
func (t *target) loadPopulation(ctx context.Context) (*population, error) {
	if t.pop != nil {
		return t.pop, nil
	}
	p := &population{}
	fams := map[string]bool{}
	err := t.history(ctx, "Patient", func(r json.RawMessage) error {
		var pat struct {
			Name []struct{ Family string } `json:"name"`
		}
		if err := json.Unmarshal(r, &pat); err != nil {
			return err
		}
		for _, n := range pat.Name {
			if n.Family != "" {
				fams[n.Family] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	labs, perMonth := map[string]int{}, map[string]int{}
	nObs := 0
	err = t.history(ctx, "Observation", func(r json.RawMessage) error {
		var o struct {
			Subject  struct{ Reference string } `json:"subject"`
			Category []struct {
				Coding []struct{ Code string } `json:"coding"`
			} `json:"category"`
			Effective string `json:"effectiveDateTime"`
		}
		if err := json.Unmarshal(r, &o); err != nil {
			return err
		}
		nObs++
		if len(o.Effective) >= 7 {
			perMonth[o.Effective[:7]]++
		}
		pid, ok := strings.CutPrefix(o.Subject.Reference, "Patient/")
		if !ok {
			return nil
		}
		for _, c := range o.Category {
			for _, cd := range c.Coding {
				if cd.Code == "laboratory" {
					labs[pid]++
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	encs := map[string]int{}
	err = t.history(ctx, "Encounter", func(r json.RawMessage) error {
		var e struct {
			Subject     struct{ Reference string } `json:"subject"`
			Participant []struct {
				Individual struct{ Reference string } `json:"individual"`
			} `json:"participant"`
		}
		if err := json.Unmarshal(r, &e); err != nil {
			return err
		}
		pid, ok := strings.CutPrefix(e.Subject.Reference, "Patient/")
		if ok && len(e.Participant) > 0 && e.Participant[0].Individual.Reference != "" {
			encs[pid]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.labPatients = sortedKeys(labs)
	p.encPatients = sortedKeys(encs)
	p.families = sortedKeys(fams)
	for m, n := range perMonth {
		if n >= searchPage {
			p.months = append(p.months, m)
		}
	}
	slices.Sort(p.months)
	fmt.Fprintf(os.Stderr, "search: %d families; %d Observations; %d patients with laboratory Observations (mean %.1f each); %d patients with Encounters (mean %.1f each); %d months with >= %d Observations (of %d with any; mean %.1f per month)\n",
		len(p.families), nObs, len(labs), mean(labs), len(encs), mean(encs), len(p.months), searchPage, len(perMonth), mean(perMonth))
	t.pop = p
	return p, nil
}

// searchOp returns the operation of search workload w.
func (t *target) searchOp(ctx context.Context, w string, maxClients int) (loadgen.Op, error) {
	urls, include, err := t.searchURLs(ctx, w)
	if err != nil {
		return nil, err
	}
	rngs := clientRands(maxClients, 4)
	return func(ctx context.Context, c, seq int) (int, error) {
		return t.search(ctx, urls[rngs[c].IntN(len(urls))], include)
	}, nil
}

// search sends the search u and checks its answer (checkSearchset); it
// returns the number of matches.
func (t *target) search(ctx context.Context, u string, include bool) (int, error) {
	b, err := t.do(ctx, "GET", u, nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	return checkSearchset(b, include)
}

// searchURLs returns the URLs search workload w draws from, and whether
// its answers must hold included resources.
func (t *target) searchURLs(ctx context.Context, w string) (urls []string, include bool, err error) {
	p, err := t.loadPopulation(ctx)
	if err != nil {
		return nil, false, err
	}
	var (
		values []string
		query  func(v string) string
	)
	switch w {
	case "search-patient":
		values = p.labPatients
		query = func(v string) string {
			return "/Observation?patient=" + url.QueryEscape(v) + "&category=laboratory&_sort=-date&_count=" + fmt.Sprint(searchPage)
		}
	case "search-date":
		values = p.months
		query = func(v string) string {
			from, _ := time.Parse("2006-01", v)
			return fmt.Sprintf("/Observation?date=ge%s&date=lt%s&_count=%d", from.Format(time.DateOnly), from.AddDate(0, 1, 0).Format(time.DateOnly), searchPage)
		}
	case "search-chain":
		values = p.families
		query = func(v string) string {
			return "/Observation?subject:Patient.family=" + url.QueryEscape(v) + "&_count=" + fmt.Sprint(searchPage)
		}
	case "search-include":
		values, include = p.encPatients, true
		query = func(v string) string {
			return "/Encounter?patient=" + url.QueryEscape(v) + "&_include=Encounter:participant&_count=" + fmt.Sprint(searchPage)
		}
	default:
		return nil, false, errors.New("unknown search workload")
	}
	if len(values) == 0 {
		return nil, false, errors.New("the server holds nothing this search would find: load a population first (bench/run.sh)")
	}
	urls = make([]string, len(values))
	for i, v := range values {
		urls[i] = t.c.base + query(v)
	}
	return urls, include, nil
}

var (
	searchsetMark = []byte(`"type":"searchset"`)
	matchMark     = []byte(`"mode":"match"`)
	includeMark   = []byte(`"mode":"include"`)
)

// checkSearchset checks a search answer and returns its number of matches.
func checkSearchset(b []byte, include bool) (int, error) {
	if !bytes.Contains(b, searchsetMark) {
		return 0, fmt.Errorf("not a searchset Bundle: %.200s", b)
	}
	n := bytes.Count(b, matchMark)
	if n == 0 || n > searchPage {
		return 0, fmt.Errorf("searchset with %d matches, want 1..%d", n, searchPage)
	}
	if include && !bytes.Contains(b, includeMark) {
		return 0, errors.New("searchset without the _include'd resources")
	}
	return n, nil
}

// history calls f with every current resource of type typ, walking the
// type's history (a stable cursor) and skipping older versions.
func (t *target) history(ctx context.Context, typ string, f func(json.RawMessage) error) error {
	seen := map[string]bool{}
	next := fmt.Sprintf("%s/%s/_history?_count=1000", t.c.base, typ)
	for next != "" {
		if _, err := checkLoopbackURL(next); err != nil {
			return err
		}
		b, err := t.do(ctx, "GET", next, nil, http.StatusOK)
		if err != nil {
			return err
		}
		var page struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
				Request  struct{ Method string }
			} `json:"entry"`
			Link []struct{ Relation, URL string } `json:"link"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return err
		}
		for _, e := range page.Entry {
			var id struct{ ID string }
			if len(e.Resource) == 0 || json.Unmarshal(e.Resource, &id) != nil || id.ID == "" || seen[id.ID] {
				continue
			}
			seen[id.ID] = true // newest first: the first version seen is current
			if e.Request.Method == "DELETE" {
				continue
			}
			if err := f(e.Resource); err != nil {
				return fmt.Errorf("%s/%s: %w", typ, id.ID, err)
			}
		}
		next = ""
		for _, l := range page.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func mean(m map[string]int) float64 {
	if len(m) == 0 {
		return 0
	}
	s := 0
	for _, n := range m {
		s += n
	}
	return float64(s) / float64(len(m))
}
