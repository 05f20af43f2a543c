package fhirapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/phivault/phivault/internal/fhir"
)

// refResolver rewrites the references of bundle entry resources.
//
// ids maps the fullUrls of a transaction's entries (urn:uuid:, urn:oid: or
// absolute) to the "Type/id" they were given. forbidden holds fullUrls
// that may not be referenced at all (the other entries of a batch, which
// the spec makes independent). Conditional references ("Type?query") are
// resolved with the Searcher and must match exactly one resource. Local
// references ("#id") are left alone, at any depth, including inside
// contained resources and extensions.
type refResolver struct {
	ctx       context.Context
	search    Searcher
	ids       map[string]string
	forbidden map[string]bool
	cond      map[string]string // conditional reference -> Type/id, resolved once per plan
}

func newRefResolver(ctx context.Context, s Searcher, ids map[string]string, forbidden map[string]bool) *refResolver {
	return &refResolver{ctx: ctx, search: s, ids: ids, forbidden: forbidden, cond: map[string]string{}}
}

// rewrite replaces, in place, every Reference.reference in res that names
// a bundle entry or is conditional. Errors are *Error values naming the
// entry and the element: 400 for a dangling or forbidden reference, 412
// for a conditional reference that matches no or several resources, or the
// Searcher's error for a bad query.
func (r *refResolver) rewrite(e *bundleEntry, res fhir.Resource) error {
	path := make([]string, 0, 16)
	return r.walk(e, map[string]any(res), &path)
}

func (r *refResolver) walk(e *bundleEntry, v any, path *[]string) error {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			*path = append(*path, "."+k)
			var err error
			if s, ok := child.(string); ok && k == "reference" && s != "" {
				var out string
				if out, err = r.resolve(e, s, *path); err == nil && out != s {
					v[k] = out
				}
			} else {
				err = r.walk(e, child, path)
			}
			*path = (*path)[:len(*path)-1]
			if err != nil {
				return err
			}
		}
	case []any:
		for i, child := range v {
			*path = append(*path, fmt.Sprintf("[%d]", i))
			err := r.walk(e, child, path)
			*path = (*path)[:len(*path)-1]
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve returns what reference s becomes.
func (r *refResolver) resolve(e *bundleEntry, s string, path []string) (string, error) {
	if s[0] == '#' {
		return s, nil
	}
	elem := "resource" + strings.Join(path, "")
	if r.forbidden[s] && s != e.fullURL {
		return "", e.entryErr(http.StatusBadRequest, "invalid", elem, "a batch entry may not refer to another entry of the batch; use a transaction")
	}
	if to, ok := r.ids[s]; ok {
		return to, nil
	}
	if strings.HasPrefix(s, "urn:uuid:") || strings.HasPrefix(s, "urn:oid:") {
		return "", e.entryErr(http.StatusBadRequest, "not-found", elem, "the reference names no entry of this bundle (dangling urn reference)")
	}
	typ, rawQuery, ok := strings.Cut(s, "?")
	if !ok || strings.Contains(typ, "/") || strings.Contains(typ, ":") {
		return s, nil
	}
	if to, ok := r.cond[s]; ok {
		return to, nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil || len(q) == 0 || !fhir.IsResourceType(typ) {
		return "", e.entryErr(http.StatusBadRequest, "invalid", elem, "a conditional reference must be Type?search-parameters")
	}
	ids, _, err := r.search.Find(r.ctx, typ, q, 2)
	if err != nil {
		return "", e.wrapEntryErr(err)
	}
	switch len(ids) {
	case 1:
		to := typ + "/" + ids[0]
		r.cond[s] = to
		return to, nil
	case 0:
		return "", e.entryErr(http.StatusPreconditionFailed, "not-found", elem, "the conditional reference matches no resource")
	default:
		return "", e.entryErr(http.StatusPreconditionFailed, "multiple-matches", elem, "the conditional reference matches more than one resource")
	}
}

// cloneJSON deep-copies a parsed JSON value, so that a transaction can be
// planned again from the request after a concurrent change.
func cloneJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = cloneJSON(x)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = cloneJSON(x)
		}
		return s
	default:
		return v
	}
}

func cloneResource(r fhir.Resource) fhir.Resource {
	return fhir.Resource(cloneJSON(map[string]any(r)).(map[string]any))
}
