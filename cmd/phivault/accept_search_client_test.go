package main

// The search suite's client: a server on an existing data directory, and
// searches sent to it over HTTPS and walked through their next links.

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// page is one searchset Bundle as the suite reads it.
type page struct {
	Total *int `json:"total"`
	Link  []struct {
		Relation, URL string
	} `json:"link"`
	Entry []struct {
		Resource struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		} `json:"resource"`
		Search struct{ Mode string } `json:"search"`
	} `json:"entry"`
}

func (p *page) next() string {
	for _, l := range p.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

// walk is the outcome of following a search through all its pages.
type walk struct {
	matches []string        // Type/id in the order returned
	incl    map[string]bool // included Type/id
	totals  []*int          // Bundle.total of each page
	pages   int
}

// serveData serves an existing data directory like newTestServer does.
func serveData(t *testing.T, dir string) *testServer {
	return serveDir(t, dir, slog.New(slog.DiscardHandler))
}

// fetch sends GET url (or POST with a form body) and decodes the Bundle.
func (s *testServer) fetch(method, u, form string) (*page, error) {
	var body io.Reader
	if form != "" {
		body = strings.NewReader(form)
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/fhir+json")
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %d %.400s", method, u, resp.StatusCode, b)
	}
	var p page
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// walkSearch follows a search from its first request through every next
// link; between pages it calls between (if set).
func (s *testServer) walkSearch(method, typ, q string, between func()) (*walk, error) {
	w := &walk{incl: map[string]bool{}}
	u, form := s.base+"/"+typ+"?"+q, ""
	if method == http.MethodPost {
		u, form = s.base+"/"+typ+"/_search", q
	}
	for u != "" {
		p, err := s.fetch(method, u, form)
		if err != nil {
			return nil, err
		}
		method, form = http.MethodGet, ""
		w.pages++
		w.totals = append(w.totals, p.Total)
		for _, e := range p.Entry {
			k := e.Resource.ResourceType + "/" + e.Resource.ID
			switch e.Search.Mode {
			case "match":
				w.matches = append(w.matches, k)
			case "include":
				w.incl[k] = true
			}
		}
		if u = p.next(); u != "" && !strings.HasPrefix(u, s.base+"/") {
			return nil, fmt.Errorf("next link %q is not on this server", u)
		}
		if w.pages > 5000 {
			return nil, fmt.Errorf("more than 5000 pages")
		}
		if between != nil {
			between()
		}
	}
	return w, nil
}

// parallel runs f over n items with k workers.
func parallel(n, k int, f func(i int)) {
	var wg sync.WaitGroup
	ch := make(chan int)
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ch {
				f(i)
			}
		}()
	}
	for i := range n {
		ch <- i
	}
	close(ch)
	wg.Wait()
}

// enc builds a query string from key, value pairs (values escaped).
func enc(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[i])
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(kv[i+1]))
	}
	return b.String()
}
