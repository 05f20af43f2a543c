package fhirapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
)

// PagedSearcher is implemented by a Searcher that answers whole search
// requests: sorting, paging links, totals and included resources. The
// handler still decides access to every returned resource and audits.
type PagedSearcher interface {
	// Search runs one page of req. Errors for bad queries are *Error
	// values with a 400 status.
	Search(ctx context.Context, req SearchRequest) (*SearchPage, error)
}

// SearchRequest is a search as the handler received it (GET query and
// POST form merged).
type SearchRequest struct {
	Type    string
	Query   url.Values
	Base    string // public base URL of the FHIR endpoint
	Lenient bool   // Prefer: handling=lenient
	// Visible, when set, is the caller's read decision: the searcher
	// leaves out every resource it rejects from the matches, the total
	// (also for _summary=count), the included resources and the inner
	// sets of chains and _has, so that nothing hidden is disclosed or can
	// be inferred. The handler always sets it.
	Visible Visibility
	// Caller is who searches; paging links are bound to its UserID and
	// SessionID, so a link replayed by anyone else is refused (400).
	Caller policy.Principal
}

// SearchPage is one page of a search.
type SearchPage struct {
	Matches  []records.Entry
	Includes []records.Entry
	Total    int  // number of matches; meaningful only if HasTotal
	HasTotal bool // false for _total=none or when unknown
	// Self, Next and Prev are query strings (without "?") for the links;
	// Next and Prev are empty when there is no such page.
	Self, Next, Prev string
	// Ignored lists parameters ignored under lenient handling.
	Ignored []string
	// Warnings say why the matches may be incomplete (client-safe text).
	Warnings []string
}

// search serves GET /{type}?... and POST /{type}/_search (form body) with
// the same semantics: a searchset Bundle of what the caller may read.
func (a *API) search(c *call) error {
	c.ev.Interaction, c.ev.Action = "search-type", "E"
	typ, _, err := c.target(false)
	if err != nil {
		return err
	}
	q := c.r.URL.Query()
	if c.r.Method == http.MethodPost {
		b, err := c.body("application/x-www-form-urlencoded")
		if err != nil {
			return err
		}
		form, err := url.ParseQuery(string(b))
		if err != nil {
			return errorf(http.StatusBadRequest, "structure", "the form body is not valid")
		}
		for k, vs := range form {
			q[k] = append(q[k], vs...)
		}
	}
	c.ev.Query = hex.EncodeToString(a.Records.Token("audit-query", typ, q.Encode()))
	count, err := countParam(q)
	if err != nil {
		return err
	}
	if err := a.decide(c, policy.Search, typ, "", ""); err != nil {
		return err
	}
	if ps, ok := a.Search.(PagedSearcher); ok {
		return a.searchPaged(c, ps, typ, q)
	}
	// Without a paging searcher, every match is read and decided, so
	// that the total counts only what the caller may see.
	ids, _, err := a.Search.Find(c.ctx, typ, q, 0)
	if err != nil {
		return err
	}
	es, err := a.Records.ReadMany(c.ctx, typ, ids)
	if err != nil {
		return err
	}
	total := 0
	var entries entryList
	for _, e := range es {
		if !a.allowed(c, e) {
			continue
		}
		if total++; total > count {
			continue
		}
		if err := a.searchEntry(c, q, e, "match", &entries); err != nil {
			return err
		}
	}
	if err := a.record(c); err != nil {
		return err
	}
	writeBundle(c.w, http.StatusOK, map[string]any{
		"resourceType": "Bundle", "type": "searchset", "total": total,
		"link": []any{map[string]any{"relation": "self", "url": a.Base + "/" + typ + "?" + q.Encode()}},
	}, &entries)
	return nil
}

// searchPaged answers a search through a PagedSearcher. Every match and
// included resource passes the read decision (the one the searcher was
// given, so a version it decided is not decided twice); denied ones are
// left out (and counted out of the total) and never audited as disclosed.
func (a *API) searchPaged(c *call, ps PagedSearcher, typ string, q url.Values) error {
	lenient := false
	for _, p := range c.r.Header.Values("Prefer") {
		lenient = lenient || strings.Contains(p, "handling=lenient")
	}
	vis := a.readDecisions(c)
	page, err := ps.Search(c.ctx, SearchRequest{Type: typ, Query: q, Base: a.Base, Lenient: lenient, Visible: vis.Visible, Caller: c.who})
	if err != nil {
		return err
	}
	var entries entryList
	for _, e := range page.Matches {
		if !vis.Visible(c.ctx, e) {
			page.Total--
			continue
		}
		if err := a.searchEntry(c, q, e, "match", &entries); err != nil {
			return err
		}
	}
	for _, e := range page.Includes {
		if !vis.Visible(c.ctx, e) {
			continue
		}
		if err := a.searchEntry(c, q, e, "include", &entries); err != nil {
			return err
		}
	}
	if len(page.Ignored) > 0 {
		entries.addJSON(outcomeEntry("not-supported", "ignored unknown or unsupported search parameters: "+strings.Join(page.Ignored, ", ")))
	}
	for _, w := range page.Warnings {
		entries.addJSON(outcomeEntry("incomplete", w))
	}
	if err := a.record(c); err != nil {
		return err
	}
	links := []any{map[string]any{"relation": "self", "url": a.Base + "/" + typ + "?" + page.Self}}
	if page.Next != "" {
		links = append(links, map[string]any{"relation": "next", "url": a.Base + "/" + typ + "?" + page.Next})
	}
	if page.Prev != "" {
		links = append(links, map[string]any{"relation": "previous", "url": a.Base + "/" + typ + "?" + page.Prev})
	}
	b := map[string]any{"resourceType": "Bundle", "type": "searchset", "link": links}
	if page.HasTotal {
		b["total"] = page.Total
	}
	writeBundle(c.w, http.StatusOK, b, &entries)
	return nil
}

// outcomeEntry is a searchset entry holding a warning OperationOutcome.
func outcomeEntry(code, diagnostics string) []byte {
	b, _ := json.Marshal(map[string]any{
		"resource": map[string]any{"resourceType": "OperationOutcome", "issue": []any{map[string]any{
			"severity": "warning", "code": code, "diagnostics": diagnostics,
		}}},
		"search": map[string]any{"mode": "outcome"},
	})
	return b
}

// allowed is the read decision for a search result; the handler applies
// it even to what a searcher already filtered with Visible.
func (a *API) allowed(c *call, e records.Entry) bool {
	return a.visible(c)(c.ctx, e)
}

// searchEntry adds e to es in the given search mode, shaped as q asks
// (_elements, _summary), and to the call's audit event as disclosed.
func (a *API) searchEntry(c *call, q url.Values, e records.Entry, mode string, es *entryList) error {
	body, err := shape(q, e.Body)
	if err != nil {
		return err
	}
	c.ev.Entities = append(c.ev.Entities, versionRef(e))
	c.ev.Patients = appendPatient(c.ev.Patients, e.Patient)
	es.add(a.Base, e.Type, e.ID, body, mode)
	return nil
}
