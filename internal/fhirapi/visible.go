package fhirapi

import (
	"context"
	"net/url"
	"sync"

	"github.com/phivault/phivault/internal/jsonscan"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// Visibility reports whether the caller of one request may read e (a
// current version, decrypted). It is the read decision of the policy
// decision point for that caller; a search engine applies it to every
// resource whose existence or values could reach the caller: matches,
// totals, included resources and the inner sets of chains and _has.
type Visibility func(ctx context.Context, e records.Entry) bool

// VisibleFinder is implemented by a Searcher that evaluates a query under
// a caller's visibility: resources visible rejects neither match nor take
// part in chains or _has. check is returned only when it gives the same
// answer as the visible evaluation (no hidden resource matched). The API
// uses it for conditional interactions and references; without it, the
// API filters a plain Find's matches itself.
type VisibleFinder interface {
	FindVisible(ctx context.Context, typ string, query url.Values, limit int, visible Visibility) (ids []string, check *store.MatchQuery, err error)
}

// visible is the caller's read decision as a Visibility.
func (a *API) visible(c *call) Visibility {
	return func(ctx context.Context, e records.Entry) bool {
		d := a.Policy.Decide(ctx, a.request(c, policy.Read, e))
		return d.Allow
	}
}

// readDecisions is the caller's read decision for one request, kept per
// version: a searcher decides each resource it considers (Visible), and
// the handler, which decides every entry it sends again rather than trust
// the searcher, is answered for a version already decided without a
// second policy evaluation. An entry the searcher never decided, or one
// it returned although denied, is decided (or denied) all the same.
type readDecisions struct {
	decide Visibility
	mu     sync.Mutex
	seen   map[decisionKey]bool
}

// decisionKey names what a read decision is about: one version (whose
// body, and so its labels, is fixed) in one patient's compartment.
type decisionKey struct {
	typ, id, patient string
	vid              int64
}

func (a *API) readDecisions(c *call) *readDecisions {
	return &readDecisions{decide: a.visible(c), seen: make(map[decisionKey]bool, 32)} // a page and what was read for it
}

// Visible is the decision as a Visibility; it is safe for concurrent use.
func (d *readDecisions) Visible(ctx context.Context, e records.Entry) bool {
	k := decisionKey{e.Type, e.ID, e.Patient, e.VID}
	d.mu.Lock()
	allow, ok := d.seen[k]
	d.mu.Unlock()
	if ok {
		return allow
	}
	allow = d.decide(ctx, e)
	d.mu.Lock()
	d.seen[k] = allow
	d.mu.Unlock()
	return allow
}

// find answers a conditional interaction's query under the caller's
// visibility: resources the caller may not read are neither touched nor
// counted, so a condition never reveals that a hidden resource exists.
func (a *API) find(c *call, typ string, q url.Values, limit int) ([]string, *store.MatchQuery, error) {
	if vf, ok := a.Search.(VisibleFinder); ok {
		return vf.FindVisible(c.ctx, typ, q, limit, a.visible(c))
	}
	ids, check, err := a.Search.Find(c.ctx, typ, q, 0)
	if err != nil {
		return nil, nil, err
	}
	es, err := a.Records.ReadMany(c.ctx, typ, ids)
	if err != nil {
		return nil, nil, err
	}
	vis := a.visible(c)
	out := ids[:0]
	for _, e := range es {
		if vis(c.ctx, e) {
			out = append(out, e.ID)
		}
	}
	if len(out) != len(ids) {
		check = nil
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, check, nil
}

// callerSearcher is the Searcher a bundle's conditional references are
// resolved with: the API's, under the caller's visibility.
type callerSearcher struct {
	a *API
	c *call
}

func (s callerSearcher) Find(_ context.Context, typ string, q url.Values, limit int) ([]string, *store.MatchQuery, error) {
	return s.a.find(s.c, typ, q, limit)
}

// request is the policy request for act on the stored entry e, with the
// security labels and category codes of its body when it has one.
func (a *API) request(c *call, act policy.Action, e records.Entry) policy.Request {
	r := policy.Request{Principal: c.who, Action: act, Type: e.Type, ID: e.ID, Patient: e.Patient, Purpose: c.purpose()}
	r.Labels, r.Category = a.labels.of(e)
	return r
}

// decideEntry is decide for an entry at hand (labels and category filled).
func (a *API) decideEntry(c *call, act policy.Action, e records.Entry) error {
	return a.decideRequest(c, a.request(c, act, e))
}

// labels returns the meta.security codes and the category codes (every
// coding of category, whether one CodeableConcept or a list) of a
// resource body; nothing for a body that is absent or not a JSON object.
// Keys match exactly, the last of duplicate keys wins, and a field of an
// unexpected type carries no codes (FuzzLabels holds it to a reference
// over map[string]any). Every read and every searched resource pays for
// it, so it scans the body once (jsonscan) instead of decoding it.
func labels(body []byte) (security, category []string) {
	if len(body) == 0 {
		return nil, nil
	}
	s := jsonscan.New(body)
	// member reads an object, handing the value of its member name to
	// read (each time it occurs) and skipping the others.
	member := func(name string, read func() error) error {
		return s.Object(func(k []byte) error {
			if string(k) != name {
				return s.Skip()
			}
			return read()
		})
	}
	// codes reads a list of objects (Codings, or meta.security's),
	// appending to *dst each one's code if it is a non-empty string; a
	// repeated code replaces the object's earlier one.
	codes := func(dst *[]string) error {
		return s.Array(func() error {
			start := len(*dst)
			return member("code", func() error {
				*dst = (*dst)[:start]
				v, err := s.StrOrSkip()
				if len(v) > 0 {
					*dst = append(*dst, string(v))
				}
				return err
			})
		})
	}
	if s.Next() != '{' {
		return nil, nil
	}
	err := s.Object(func(k []byte) error {
		switch string(k) {
		case "meta":
			security = nil
			return member("security", func() error {
				security = nil
				return codes(&security)
			})
		case "category":
			category = nil
			concept := func() error { // a CodeableConcept
				start := len(category)
				return member("coding", func() error {
					category = category[:start] // a repeated coding replaces the earlier
					return codes(&category)
				})
			}
			if s.Next() == '[' {
				return s.Array(concept)
			}
			return concept()
		}
		return s.Skip()
	})
	if err != nil || !s.End() {
		return nil, nil
	}
	return security, category
}
