package fhirapi

import (
	"cmp"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/fhir/searchparam"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
)

// everythingRoutes registers Patient/{id}/$everything (FHIR R4
// patient-operation-everything). It does not clash with
// Patient/{id}/$access-report: both are literal last segments.
func (a *API) everythingRoutes(h func(string, func(*call) error)) {
	h("GET /fhir/Patient/{id}/$everything", a.everything)
	h("POST /fhir/Patient/{id}/$everything", a.everything)
}

// everything serves GET (and POST with a form body: the same parameters)
// Patient/{id}/$everything: a searchset Bundle of the Patient and every
// resource of its compartment that the caller may read (search mode
// "match", paged and counted), plus the Practitioner, PractitionerRole,
// Organization, Location and Medication resources a page refers to that
// the caller may read (mode "include", not counted).
//
// Contract: a caller denied the Patient read gets 403 (audited, naming the
// patient); an unknown patient 404, a deleted one 410 (after the read
// decision, like read); bad parameters 400 and nothing read. Every
// compartment resource passes the read decision with its patient, labels
// and category; hidden ones are left out of the page and the total. Only
// resources whose compartment is this patient are returned, never another
// patient's resource that merely names this one. One audit event names
// the patient and every returned resource; it is appended before anything
// is sent, and a failure to append sends nothing (503). Next links are
// bound to the caller (user and session) and to the query: a link
// replayed by anyone else, or edited, is refused with 400.
func (a *API) everything(c *call) error {
	c.ev.Interaction, c.ev.Action = "everything", "E"
	id := c.r.PathValue("id")
	if !fhir.IsID(id) {
		return errorf(http.StatusBadRequest, "value", "invalid Patient id")
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
	eq, err := parseEverything(q)
	if err != nil {
		return err
	}
	c.ev.Query = hex.EncodeToString(a.Records.Token("audit-query", "Patient/$everything", id, q.Encode()))
	var after *everythingPos
	if eq.cursor != "" {
		p, err := a.openEverythingCursor(c, id, eq)
		if err != nil {
			return err
		}
		after = &p
	}

	pat, err := a.Records.Read(c.ctx, "Patient", id)
	switch {
	case errors.Is(err, records.ErrDeleted):
		if err := a.decide(c, policy.Read, "Patient", id, id); err != nil {
			return err
		}
		return missing("Patient", id, err)
	case err != nil:
		return missing("Patient", id, err)
	}
	if err := a.decideEntry(c, policy.Read, pat); err != nil {
		return err
	}

	all, err := a.compartment(c, id, eq)
	if err != nil {
		return err
	}
	if eq.wants("Patient") && eq.since(pat) {
		all = append(all, pat)
	}
	slices.SortFunc(all, func(x, y records.Entry) int { return everythingPosOf(x).compare(everythingPosOf(y)) })

	total := 0
	var page []records.Entry
	more := false
	for _, e := range all {
		if !a.allowed(c, e) {
			continue
		}
		total++
		if after != nil && everythingPosOf(e).compare(*after) <= 0 {
			continue
		}
		if len(page) == eq.count {
			more = true
			continue
		}
		page = append(page, e)
	}

	c.ev.Patients = []string{id}
	var entries entryList
	for _, e := range page {
		if err := a.searchEntry(c, nil, e, "match", &entries); err != nil {
			return err
		}
	}
	incs, err := a.everythingIncludes(c, page)
	if err != nil {
		return err
	}
	for _, e := range incs {
		if !a.allowed(c, e) {
			continue
		}
		if err := a.searchEntry(c, nil, e, "include", &entries); err != nil {
			return err
		}
	}
	links := []any{map[string]any{"relation": "self", "url": a.everythingLink(id, q)}}
	if more && len(page) > 0 {
		next := eq.canon()
		next.Set("_cursor", a.sealEverythingCursor(c, id, eq, everythingPosOf(page[len(page)-1])))
		links = append(links, map[string]any{"relation": "next", "url": a.everythingLink(id, next)})
	}
	if err := a.record(c); err != nil {
		return err
	}
	writeBundle(c.w, http.StatusOK, map[string]any{"resourceType": "Bundle", "type": "searchset", "total": total, "link": links}, &entries)
	return nil
}

func (a *API) everythingLink(id string, q url.Values) string {
	s := a.Base + "/Patient/" + id + "/$everything"
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// compartment returns the current resources of the types eq asks for
// whose compartment is patient id (records.Entry.Patient), updated since
// eq's _since. Each compartment parameter of each type is asked of the
// searcher with the reference Patient/{id}; a parameter the searcher
// rejects as unsupported (400) is skipped and logged (no patient data).
func (a *API) compartment(c *call, id string, eq everythingQuery) ([]records.Entry, error) {
	reg := searchparam.R4()
	var out []records.Entry
	for _, typ := range patientCompartmentTypes {
		if !eq.wants(typ) {
			continue
		}
		seen := map[string]bool{}
		var ids []string
		for _, code := range reg.PatientCompartment(typ) {
			found, _, err := a.Search.Find(c.ctx, typ, url.Values{code: {"Patient/" + id}}, 0)
			var fe *Error
			if errors.As(err, &fe) && fe.Status == http.StatusBadRequest {
				a.Log.Warn("everything: compartment parameter not searchable", "type", typ, "param", code)
				continue
			}
			if err != nil {
				return nil, err
			}
			for _, f := range found {
				if !seen[f] {
					seen[f] = true
					ids = append(ids, f)
				}
			}
		}
		if len(ids) == 0 {
			continue
		}
		es, err := a.Records.ReadMany(c.ctx, typ, ids)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if e.Patient == id && eq.since(e) {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// everythingPos is a resource's place in the answer's order: the Patient
// first, then by type and id.
type everythingPos struct {
	Rank     int
	Type, ID string
}

func everythingPosOf(e records.Entry) everythingPos {
	r := 1
	if e.Type == "Patient" {
		r = 0
	}
	return everythingPos{Rank: r, Type: e.Type, ID: e.ID}
}

func (p everythingPos) compare(o everythingPos) int {
	return cmp.Or(cmp.Compare(p.Rank, o.Rank), cmp.Compare(p.Type, o.Type), cmp.Compare(p.ID, o.ID))
}
