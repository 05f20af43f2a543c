package fhirapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// txOut is what a transaction did for one entry.
type txOut struct {
	op       int            // index into txPlan.ops, -1 for none
	existing *records.Entry // conditional create that matched this resource
	target   string         // Type/id the entry resolved to ("" for none)
	unless   *store.MatchQuery
}

// txPlan is a transaction resolved against the current data: ids assigned,
// conditions and references resolved, resources rewritten and validated.
type txPlan struct {
	ops     []records.Op
	opEntry []*bundleEntry
	acts    []policy.Action
	patient []string // for deletes: the compartment of the deleted resource
	out     []txOut  // by entry index
}

// transaction applies a transaction Bundle atomically: every change and
// the one audit event (interaction "transaction", every entity changed or
// returned) commit in one records.Commit, or nothing does. Entries are
// processed in the spec's order (DELETE, POST, PUT/PATCH, then GET/HEAD)
// and answered in their original order. A failing entry fails the whole
// transaction with its status and an OperationOutcome naming it.
//
// After a concurrent change (records.ErrConflict) the whole plan, with its
// conditions, is resolved again. GET and HEAD entries run after the commit
// through the ordinary read and search handlers, each decided and audited
// on its own; they cannot undo the committed writes, so their failures are
// reported in their entry's response.
func (a *API) transaction(c *call, b *bundleReq) error {
	var (
		p   *txPlan
		rs  []records.Result
		err error
	)
	for try := 0; ; try++ {
		if p, err = a.planTx(c, b); err != nil {
			return err
		}
		rs, err = a.Records.Commit(c.ctx, p.ops, func(rs []records.Result) ([]byte, error) { return a.txLeaf(c, p, rs) })
		if errors.Is(err, records.ErrConflict) && try < maxRetries {
			continue
		}
		break
	}
	switch {
	case errors.Is(err, records.ErrConflict):
		return errorf(http.StatusConflict, "conflict", "a concurrent change won; retry the transaction")
	case errors.Is(err, records.ErrPrecondition):
		return errorf(http.StatusPreconditionFailed, "conflict", "a resource has changed: its version does not match the entry's ifMatch")
	case err != nil:
		return err
	}
	h := a.Handler()
	entries := make([]any, len(b.entries))
	for _, e := range b.entries {
		o := p.out[e.i]
		switch {
		case e.method == "GET" || e.method == "HEAD":
			entries[e.i] = a.dispatch(c, h, e, nil)
		case o.existing != nil:
			entries[e.i] = a.txEntry(c, http.StatusOK, *o.existing)
		case o.op < 0:
			entries[e.i] = map[string]any{"response": map[string]any{"status": statusLine(http.StatusNoContent)}}
		default:
			r := rs[o.op]
			status := http.StatusOK
			switch {
			case e.method == "DELETE":
				status = http.StatusNoContent
			case r.Created:
				status = http.StatusCreated
			}
			entries[e.i] = a.txEntry(c, status, r.Entry)
		}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"resourceType": "Bundle", "type": "transaction-response", "entry": entries})
	return nil
}

// txEntry renders the response entry of a write (or a matched conditional
// create).
func (a *API) txEntry(c *call, status int, e records.Entry) map[string]any {
	resp := map[string]any{"status": statusLine(status)}
	out := map[string]any{"response": resp}
	if status == http.StatusNoContent && e.VID == 0 {
		return out
	}
	resp["etag"] = etag(e.VID)
	resp["lastModified"] = e.Updated.UTC().Format("2006-01-02T15:04:05.999999Z07:00")
	if status == http.StatusNoContent {
		return out
	}
	resp["location"] = fmt.Sprintf("%s/%s/_history/%d", e.Type, e.ID, e.VID)
	out["fullUrl"] = a.Base + "/" + e.Type + "/" + e.ID
	if c.prefer() != "minimal" && e.Body != nil {
		out["resource"] = rawJSON(e.Body)
	}
	return out
}

func statusLine(code int) string { return fmt.Sprintf("%d %s", code, http.StatusText(code)) }

// txLeaf decides every change with the compartment records computed and
// returns the transaction's audit leaf.
func (a *API) txLeaf(c *call, p *txPlan, rs []records.Result) ([]byte, error) {
	c.ev.Entities, c.ev.Patients = nil, nil
	for i, r := range rs {
		pat := r.Patient
		if p.acts[i] == policy.Delete {
			pat = p.patient[i]
		}
		req := a.request(c, p.acts[i], r.Entry)
		req.Type, req.ID, req.Patient = r.Type, r.ID, pat
		if err := a.decideRequest(c, req); err != nil {
			return nil, p.opEntry[i].wrapEntryErr(err)
		}
		if !r.NoOp {
			c.ev.Entities = append(c.ev.Entities, versionRef(r.Entry))
		}
		c.ev.Patients = appendPatient(c.ev.Patients, pat)
	}
	for _, o := range p.out {
		if o.existing != nil {
			c.ev.Entities = append(c.ev.Entities, versionRef(*o.existing))
			c.ev.Patients = appendPatient(c.ev.Patients, o.existing.Patient)
		}
	}
	return c.ev.Leaf(), nil
}

// planTx resolves the transaction against the current data. It reads and
// searches but changes nothing.
func (a *API) planTx(c *call, b *bundleReq) (*txPlan, error) {
	p := &txPlan{out: make([]txOut, len(b.entries))}
	ids := map[string]string{} // fullUrl -> Type/id
	owner := map[string]int{}  // Type/id -> entry changing it
	for i := range p.out {
		p.out[i].op = -1
	}
	order := txOrder(b.entries)
	// Identities first: references may point at any entry.
	for _, e := range order {
		o := &p.out[e.i]
		id, err := a.txIdentity(c, e, o)
		if err != nil {
			return nil, err
		}
		if id == "" {
			continue
		}
		o.target = e.typ + "/" + id
		if j, dup := owner[o.target]; dup {
			if j > e.i { // name the later entry
				j, e = e.i, b.entries[j]
			}
			return nil, e.entryErr(http.StatusBadRequest, "invalid", "request", fmt.Sprintf("changes the same resource as Bundle.entry[%d]; a transaction may touch each resource once", j))
		}
		owner[o.target] = e.i
		if e.fullURL != "" {
			ids[e.fullURL] = o.target
		}
	}
	refs := newRefResolver(c.ctx, callerSearcher{a, c}, ids, nil)
	for _, e := range order {
		if err := a.txOp(c, p, e, refs); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// txOrder returns the write entries in processing order: DELETE, POST,
// then PUT and PATCH, each group in bundle order.
func txOrder(es []*bundleEntry) []*bundleEntry {
	var out []*bundleEntry
	for _, group := range [][]string{{"DELETE"}, {"POST"}, {"PUT", "PATCH"}} {
		for _, e := range es {
			for _, m := range group {
				if e.method == m {
					out = append(out, e)
				}
			}
		}
	}
	return out
}

// txIdentity resolves which resource a write entry changes and returns its
// id ("" when it changes none: a conditional delete that matched nothing).
// A conditional create that matches one resource sets o.existing.
func (a *API) txIdentity(c *call, e *bundleEntry, o *txOut) (string, error) {
	cond := e.query
	if e.method == "POST" {
		cond = e.ifNoneExist
	}
	if e.id != "" || len(cond) == 0 {
		if e.method == "POST" {
			return newID(), nil
		}
		return e.id, nil
	}
	found, check, err := a.find(c, e.typ, cond, 2)
	if err != nil {
		return "", e.wrapEntryErr(err)
	}
	switch {
	case len(found) > 1:
		return "", e.entryErr(http.StatusPreconditionFailed, "multiple-matches", "request", "the condition matches more than one resource")
	case len(found) == 1 && e.method == "POST":
		cur, err := a.Records.Read(c.ctx, e.typ, found[0])
		if err != nil {
			return "", err
		}
		if err := a.decideEntry(c, policy.Read, cur); err != nil {
			return "", e.wrapEntryErr(err)
		}
		o.existing = &cur
		return cur.ID, nil
	case len(found) == 1:
		if rid, _ := e.res["id"].(string); e.method == "PUT" && rid != "" && rid != found[0] {
			return "", e.entryErr(http.StatusBadRequest, "invalid", "resource.id", "does not match the resource the condition found")
		}
		return found[0], nil
	case e.method == "PUT":
		if rid, _ := e.res["id"].(string); rid != "" {
			return rid, nil
		}
		return newID(), nil
	case e.method == "POST":
		o.unless = check
		return newID(), nil
	}
	// A conditional delete that matched nothing: decided like a direct one.
	if err := a.decide(c, policy.Delete, e.typ, "", ""); err != nil {
		return "", e.wrapEntryErr(err)
	}
	return "", nil
}

// txOp builds the records.Op of a write entry.
func (a *API) txOp(c *call, p *txPlan, e *bundleEntry, refs *refResolver) error {
	o := &p.out[e.i]
	if o.existing != nil || o.target == "" {
		return nil
	}
	id := o.target[len(e.typ)+1:]
	op := records.Op{Type: e.typ, ID: id, IfMatch: e.ifMatch}
	act := policy.Update
	patient := ""
	var cur records.Entry
	var err error
	if e.method != "POST" {
		cur, err = a.Records.Read(c.ctx, e.typ, id)
		switch {
		case errors.Is(err, records.ErrNotFound) && (e.method == "PATCH" || e.method == "DELETE" && e.id != ""):
			return e.entryErr(http.StatusNotFound, "not-found", "request.url", "the resource is not known")
		case errors.Is(err, records.ErrDeleted) && e.method == "PATCH":
			return e.entryErr(http.StatusGone, "deleted", "request.url", "the resource was deleted")
		case err != nil && !errors.Is(err, records.ErrNotFound) && !errors.Is(err, records.ErrDeleted):
			return err
		}
		if e.method == "DELETE" {
			act = policy.Delete
		}
		if err == nil {
			if err := a.decideEntry(c, act, cur); err != nil {
				return e.wrapEntryErr(err)
			}
			if e.ifMatch != 0 && e.ifMatch != cur.VID {
				return e.entryErr(http.StatusPreconditionFailed, "conflict", "request.ifMatch", "the resource has changed: its version does not match ifMatch")
			}
		} else if e.ifMatch != 0 {
			return e.entryErr(http.StatusPreconditionFailed, "conflict", "request.ifMatch", "the resource does not exist")
		}
	}
	var res fhir.Resource
	switch e.method {
	case "DELETE":
		patient = cur.Patient
	case "PATCH":
		body, perr := applyBinaryPatch(e.res, cur.Body)
		if perr != nil {
			return e.wrapEntryErr(perr)
		}
		if res, err = parseResource(body, e.typ); err != nil {
			return e.wrapEntryErr(err)
		}
		if rid, _ := res["id"].(string); rid != id {
			return e.entryErr(http.StatusUnprocessableEntity, "processing", "resource", "a patch may not change the resource id")
		}
		op.IfMatch = cur.VID
	default:
		res = cloneResource(e.res)
		res["id"] = id
		if e.method == "POST" {
			act, op.MustCreate, op.Unless = policy.Create, true, o.unless
		}
	}
	if res != nil {
		if err := refs.rewrite(e, res); err != nil {
			return err
		}
		if issues := fhir.Validate(res); fhir.HasErrors(issues) {
			return e.wrapEntryErr(invalid(http.StatusUnprocessableEntity, issues))
		}
		op.Resource = res
	}
	p.ops = append(p.ops, op)
	p.opEntry = append(p.opEntry, e)
	p.acts = append(p.acts, act)
	p.patient = append(p.patient, patient)
	o.op = len(p.ops) - 1
	return nil
}
