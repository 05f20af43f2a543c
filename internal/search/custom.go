package search

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/fhir/searchparam"
	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// Custom search parameters. A SearchParameter resource stored with status
// "active" adds its parameter to the R4 ones for every resource written
// after it is committed; resources written before carry no tokens for it
// until a reindex (Reindex) has run since. One that is not active is
// stored and not used. A custom parameter may not take a code that its
// base already has (an R4 parameter, or another custom one): replacing a
// built-in could change which patient compartment - and so which data key -
// a resource belongs to, and would silently change what existing queries
// mean. The write of a SearchParameter that cannot be used is refused (422).

// customState is what LoadParams last took into use.
type customState struct {
	seq    int64                  // newest SearchParameter change seen (0: none)
	byID   map[string]customParam // stored resource id -> its parameter
	failed map[string]string      // stored resource id -> why it is not in use
	reidx  map[string]int64       // type -> change sequence when its last complete reindex started
}

type customParam struct {
	p     *searchparam.Param
	since time.Time // when the version that defines it was written
	seq   int64     // and its change sequence
}

var _ records.Observer = (*Engine)(nil)

// Committed implements records.Observer: a committed change to a
// SearchParameter takes effect before the write that made it answers.
func (e *Engine) Committed(ctx context.Context, ops []records.Op) {
	for _, op := range ops {
		if op.Type == "SearchParameter" {
			// A failure keeps the parameters in use; Refresh tries again.
			_ = e.LoadParams(context.WithoutCancel(ctx))
			return
		}
	}
}

// Refresh reloads the custom parameters if a SearchParameter changed since
// the last load (on another node of a cluster, or by a restore). It costs
// one indexed read when nothing changed.
func (e *Engine) Refresh(ctx context.Context) error {
	seq, err := e.latestSeq(ctx, "SearchParameter")
	if err != nil {
		return err
	}
	if seq == e.custom.Load().seq {
		return nil
	}
	return e.LoadParams(ctx)
}

// LoadParams takes the stored active SearchParameters into use, oldest
// first: one that conflicts with an earlier one or no longer compiles is
// left out and reported by CustomParams.
func (e *Engine) LoadParams(ctx context.Context) error {
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	seq, err := e.latestSeq(ctx, "SearchParameter")
	if err != nil {
		return err
	}
	var all []records.Entry
	for after := ""; ; {
		ids, err := e.rec.Match(ctx, store.MatchQuery{Type: "SearchParameter", After: after, Limit: 500})
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			break
		}
		after = ids[len(ids)-1]
		page, err := e.rec.ReadMany(ctx, "SearchParameter", ids)
		if err != nil {
			return err
		}
		all = append(all, page...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Updated.Before(all[j].Updated) })
	reg := searchparam.R4()
	st := &customState{seq: seq, byID: map[string]customParam{}, failed: map[string]string{}}
	for _, en := range all {
		res, err := parseJSON(en.Body)
		if err != nil {
			return fmt.Errorf("search: SearchParameter/%s: %w", en.ID, err)
		}
		if res["status"] != "active" {
			continue
		}
		p, ferr := paramOf(res)
		if ferr == nil {
			ferr = conflict(reg, p)
		}
		var next *searchparam.Registry
		if ferr == nil {
			if next, err = reg.With(p); err != nil {
				ferr = unusable("SearchParameter.expression", err.Error())
			}
		}
		if ferr != nil {
			st.failed[en.ID] = ferr.Msg
			continue
		}
		reg = next
		st.byID[en.ID] = customParam{p: p, since: en.Updated, seq: en.Seq}
	}
	if st.reidx, err = e.reindexedAt(ctx); err != nil {
		return err
	}
	e.reg.Store(reg)
	e.custom.Store(st)
	return nil
}

// checkCustom refuses a SearchParameter write that would be active and
// cannot be used: wrong type, unknown base, an expression that does not
// compile, or a code its base already has.
func (e *Engine) checkCustom(res map[string]any) error {
	if res["status"] != "active" {
		return nil
	}
	p, ferr := paramOf(res)
	if ferr != nil {
		return ferr
	}
	id, _ := res["id"].(string)
	var others []*searchparam.Param
	for oid, c := range e.custom.Load().byID {
		if oid != id {
			others = append(others, c.p)
		}
	}
	reg, err := searchparam.R4().With(others...)
	if err != nil {
		return fmt.Errorf("search: custom parameters in use no longer combine: %w", err)
	}
	if ferr := conflict(reg, p); ferr != nil {
		return ferr
	}
	if _, err := reg.With(p); err != nil {
		return unusable("SearchParameter.expression", err.Error())
	}
	return nil
}

// paramOf converts a SearchParameter resource (already valid R4).
func paramOf(res map[string]any) (*searchparam.Param, *fhirapi.Error) {
	str := func(k string) string { s, _ := res[k].(string); return s }
	strs := func(k string) []string {
		var out []string
		for _, v := range list(res[k]) {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	p := &searchparam.Param{URL: str("url"), Code: str("code"), Type: searchparam.Type(str("type")),
		Base: strs("base"), Expression: str("expression"), Targets: strs("target")}
	switch {
	case p.Type == searchparam.Special:
		return nil, unusable("SearchParameter.type", "search parameters of type special cannot be added: the server has no way to index them")
	case strings.TrimSpace(p.Expression) == "":
		return nil, unusable("SearchParameter.expression", "an active search parameter needs a FHIRPath expression: it decides what is indexed")
	case strings.HasPrefix(p.Code, "_"):
		return nil, unusable("SearchParameter.code", "codes starting with _ are reserved for the parameters every resource has")
	}
	for i, c := range list(res["component"]) {
		m, _ := c.(map[string]any)
		def, _ := m["definition"].(string)
		expr, _ := m["expression"].(string)
		if def == "" || expr == "" {
			return nil, unusable(fmt.Sprintf("SearchParameter.component[%d]", i), "each component needs a definition and an expression")
		}
		p.Components = append(p.Components, searchparam.Component{Definition: def, Expression: expr})
	}
	return p, nil
}

// conflict refuses a code that one of p's bases already has in reg.
func conflict(reg *searchparam.Registry, p *searchparam.Param) *fhirapi.Error {
	for _, t := range bases(p.Base) {
		if q, ok := reg.Lookup(t, p.Code); ok && q.URL != p.URL {
			return unusable("SearchParameter.code", fmt.Sprintf("%s already has a search parameter %q (%s); a custom parameter needs a code of its own", t, p.Code, q.URL))
		}
	}
	return nil
}

func unusable(loc, msg string) *fhirapi.Error {
	return &fhirapi.Error{Status: http.StatusUnprocessableEntity, Code: fhir.CodeInvalid, Msg: msg,
		Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.CodeInvalid, Location: loc, Message: msg}}}
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// CustomParam describes one stored active SearchParameter.
type CustomParam struct {
	ID, Code string
	Base     []string
	Since    time.Time // when the defining version was written
	Pending  []string  // types whose resources written before Since are not indexed under it yet
	Problem  string    // why it is not in use ("" when it is)
}

// CustomParams lists the stored active SearchParameters as of the last
// load, by id.
func (e *Engine) CustomParams() []CustomParam {
	st := e.custom.Load()
	var out []CustomParam
	for id, c := range st.byID {
		cp := CustomParam{ID: id, Code: c.p.Code, Base: c.p.Base, Since: c.since}
		for _, t := range bases(c.p.Base) {
			if !st.covered(t, c.seq) {
				cp.Pending = append(cp.Pending, t)
			}
		}
		out = append(out, cp)
	}
	for id, why := range st.failed {
		out = append(out, CustomParam{ID: id, Problem: why})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// pending reports whether resources of typ written before the custom
// parameter code took effect may lack its tokens (no reindex since).
func (e *Engine) pending(typ, code string) bool {
	st := e.custom.Load()
	for _, c := range st.byID {
		if c.p.Code == code && slices.Contains(bases(c.p.Base), typ) {
			return !st.covered(typ, c.seq)
		}
	}
	return false
}
