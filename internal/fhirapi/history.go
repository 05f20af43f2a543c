package fhirapi

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

const (
	defaultCount = 50
	maxCount     = 1000
)

// history serves instance, type and system history, newest first, paged
// by the store's change sequence (stable while data changes).
func (a *API) history(c *call) error {
	c.ev.Action = "R"
	q := store.HistoryQuery{Type: c.r.PathValue("type"), ID: c.r.PathValue("id")}
	switch {
	case q.ID != "":
		c.ev.Interaction = "history-instance"
		if _, _, err := c.target(true); err != nil {
			return err
		}
	case q.Type != "":
		c.ev.Interaction = "history-type"
		if _, _, err := c.target(false); err != nil {
			return err
		}
	default:
		c.ev.Interaction = "history-system"
	}
	params := c.r.URL.Query()
	for k := range params {
		switch k {
		case "_count", "_since", "_cursor", "_format":
		default:
			return errorf(http.StatusBadRequest, "not-supported", "history does not support the parameter "+strconv.Quote(k))
		}
	}
	count, err := countParam(params)
	if err != nil {
		return err
	}
	q.Limit = count + 1
	if s := params.Get("_since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return errorf(http.StatusBadRequest, "value", "_since must be an instant such as 2024-01-02T03:04:05Z")
		}
		q.Since = t
	}
	if s := params.Get("_cursor"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return errorf(http.StatusBadRequest, "value", "invalid _cursor")
		}
		q.BeforeSeq = n
	}
	if q.Type == "" {
		if err := a.decide(c, policy.Read, "", "", ""); err != nil {
			return err
		}
	}
	es, err := a.Records.History(c.ctx, q)
	if err != nil {
		return err
	}
	next := ""
	if len(es) > count {
		es = es[:count]
		p := url.Values{"_count": {strconv.Itoa(count)}, "_cursor": {strconv.FormatInt(es[len(es)-1].Seq, 10)}}
		if s := params.Get("_since"); s != "" {
			p.Set("_since", s)
		}
		next = a.Base + c.r.URL.Path[len("/fhir"):] + "?" + p.Encode()
	}
	// Every version passes the read decision with its own compartment and
	// labels. Instance history is one resource: a denied version denies
	// the request. Type and system history leave out the versions the
	// caller may not read (a page may then hold fewer than _count).
	entries := make([]any, 0, len(es))
	for _, e := range es {
		req := a.request(c, policy.Read, e)
		if q.ID == "" {
			if d := a.Policy.Decide(c.ctx, req); !d.Allow {
				continue
			}
		}
		if err := a.decideRequest(c, req); err != nil {
			return err
		}
		c.ev.Entities = append(c.ev.Entities, versionRef(e))
		c.ev.Patients = appendPatient(c.ev.Patients, e.Patient)
		entries = append(entries, a.historyEntry(e))
	}
	b := map[string]any{"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries,
		"link": []any{map[string]any{"relation": "self", "url": a.Base + c.r.URL.Path[len("/fhir"):] + "?" + c.r.URL.RawQuery}}}
	if next != "" {
		b["link"] = append(b["link"].([]any), map[string]any{"relation": "next", "url": next})
	}
	delete(b, "total")
	if err := a.record(c); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, b)
	return nil
}

func (a *API) historyEntry(e records.Entry) map[string]any {
	url := e.Type + "/" + e.ID
	ent := map[string]any{"fullUrl": a.Base + "/" + url}
	resp := map[string]any{"etag": etag(e.VID), "lastModified": e.Updated.UTC().Format(time.RFC3339Nano)}
	switch {
	case e.Deleted:
		ent["request"] = map[string]any{"method": "DELETE", "url": url}
		resp["status"] = "204"
	case e.VID == 1:
		ent["resource"] = rawJSON(e.Body)
		ent["request"] = map[string]any{"method": "POST", "url": e.Type}
		resp["status"] = "201"
	default:
		ent["resource"] = rawJSON(e.Body)
		ent["request"] = map[string]any{"method": "PUT", "url": url}
		resp["status"] = "200"
	}
	ent["response"] = resp
	return ent
}

// countParam reads _count (default 50, at most 1000).
func countParam(q url.Values) (int, error) {
	s := q.Get("_count")
	if s == "" {
		return defaultCount, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errorf(http.StatusBadRequest, "value", "_count must be a non-negative integer")
	}
	return min(n, maxCount), nil
}
