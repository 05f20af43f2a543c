package fhirapi

import (
	"encoding/hex"
	"net/http"
	"net/url"

	"github.com/phivault/phivault/internal/policy"
)

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
	ids, _, err := a.Search.Find(c.ctx, typ, q, 0)
	if err != nil {
		return err
	}
	total := len(ids)
	ids = ids[:min(len(ids), count)]
	es, err := a.Records.ReadMany(c.ctx, typ, ids)
	if err != nil {
		return err
	}
	entries := make([]any, 0, len(es))
	for _, e := range es {
		if d := a.Policy.Decide(c.ctx, policy.Request{Principal: c.who, Action: policy.Read, Type: typ, ID: e.ID, Patient: e.Patient, Purpose: c.purpose()}); !d.Allow {
			total--
			continue
		}
		body, err := shape(q, e.Body)
		if err != nil {
			return err
		}
		c.ev.Entities = append(c.ev.Entities, versionRef(e))
		c.ev.Patients = appendPatient(c.ev.Patients, e.Patient)
		entries = append(entries, map[string]any{"fullUrl": a.Base + "/" + typ + "/" + e.ID, "resource": rawJSON(body), "search": map[string]any{"mode": "match"}})
	}
	if err := a.record(c); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]any{
		"resourceType": "Bundle", "type": "searchset", "total": total, "entry": entries,
		"link": []any{map[string]any{"relation": "self", "url": a.Base + "/" + typ + "?" + q.Encode()}},
	})
	return nil
}
