package policy

import (
	"bytes"
	"context"
	_ "embed" // the default policy set
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go"
)

//go:generate go run matrix_gen.go

//go:embed default.cedar
var defaultPolicies []byte

// DefaultPolicies returns the policy set shipped with phivault (Cedar
// source, default.cedar). The caller may modify the returned slice.
func DefaultPolicies() []byte { return bytes.Clone(defaultPolicies) }

// Policy ids the engine itself decides with (never in a policy set).
const (
	idDefaultDeny = "default-deny"      // no permit matched
	idFactsError  = "facts-unavailable" // relationships or consents could not be read
	idPolicyError = "policy-error"      // a policy failed to evaluate
	idConsentDeny = "consent-deny"      // the forbid that obeys Consent deny provisions
)

// Engine is the Cedar policy decision point. It is safe for concurrent
// use; Replace swaps the policy set atomically while decisions run.
type Engine struct {
	facts  Facts
	now    func() time.Time
	set    atomic.Pointer[policySet]
	caches *caches
}

var _ Decider = (*Engine)(nil)

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the clock used for break-the-glass windows and Consent
// periods (time.Now by default).
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// NewEngine compiles policies (Cedar source; DefaultPolicies for the
// shipped set) and returns an engine that asks facts about care
// relationships and consents. It fails if facts is nil or the set is
// invalid (see Replace).
func NewEngine(policies []byte, facts Facts, opts ...Option) (*Engine, error) {
	if facts == nil {
		return nil, errors.New("policy: no facts source")
	}
	e := &Engine{facts: facts, now: time.Now, caches: newCaches()}
	for _, o := range opts {
		o(e)
	}
	if err := e.Replace(policies); err != nil {
		return nil, err
	}
	return e, nil
}

// Replace validates policies and, only if they are valid, makes them the
// set every later decision uses; on error the current set stays. A valid
// set parses, is not empty, gives every policy a unique @id (not one the
// engine reserves: default-deny, facts-unavailable, policy-error,
// consent:...), and evaluates without error against a range of sample
// requests (which catches misspelt attributes).
func (e *Engine) Replace(policies []byte) error {
	ps, err := compile(policies)
	if err != nil {
		return err
	}
	e.set.Store(ps)
	return nil
}

// Validate reports whether policies would be accepted by Replace, without
// replacing anything (for a "check before you deploy" command).
func Validate(policies []byte) error {
	_, err := compile(policies)
	return err
}

// Source returns the Cedar source of the set in force (a copy).
func (e *Engine) Source() []byte { return bytes.Clone(e.set.Load().src) }

// policySet is a compiled, immutable policy set in source order.
type policySet struct {
	src      []byte
	ids      []cedar.PolicyID
	policies []*cedar.Policy
	reasons  map[cedar.PolicyID]string
	memo     *outcomes // nil when the set can tell entities apart by id (see memo.go)
}

// All implements cedar.PolicyIterator.
func (s *policySet) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for i, p := range s.policies {
			if !yield(s.ids[i], p) {
				return
			}
		}
	}
}

func compile(src []byte) (*policySet, error) {
	list, err := cedar.NewPolicyListFromBytes("policies.cedar", src)
	if err != nil {
		return nil, fmt.Errorf("policy: %v", err)
	}
	if len(list) == 0 {
		return nil, errors.New("policy: the policy set is empty")
	}
	ps := &policySet{src: bytes.Clone(src), reasons: map[cedar.PolicyID]string{}}
	seen := map[string]bool{}
	for _, p := range list {
		ann := p.Annotations()
		id := string(ann["id"])
		line := p.Position().Line
		switch {
		case id == "":
			return nil, fmt.Errorf("policy: the policy at line %d has no @id", line)
		case seen[id]:
			return nil, fmt.Errorf("policy: @id %q at line %d is used twice", id, line)
		case id == idDefaultDeny || id == idFactsError || id == idPolicyError || strings.HasPrefix(id, "consent:"):
			return nil, fmt.Errorf("policy: @id %q at line %d is reserved", id, line)
		}
		seen[id] = true
		ps.ids = append(ps.ids, cedar.PolicyID(id))
		ps.policies = append(ps.policies, p)
		if r := ann["reason"]; r != "" {
			ps.reasons[cedar.PolicyID(id)] = string(r)
		}
	}
	if err := probe(ps); err != nil {
		return nil, err
	}
	if idFree(list) {
		ps.memo = newOutcomes()
	}
	return ps, nil
}

// probe evaluates the set against sample requests covering every kind,
// action and fact, and reports the first evaluation error.
func probe(ps *policySet) error {
	c := newCaches()
	roles := []string{"physician", "patient", "operator"}
	for _, kind := range []struct{ typ, patient string }{{"Observation", "p1"}, {"Observation", ""}, {"Practitioner", ""}, {"AuditEvent", ""}} {
		for _, a := range []Action{Read, Search, Create, Update, Delete, Export, Admin, AuditRead} {
			for bits := 0; bits < 4; bits++ {
				r := Request{Principal: Principal{UserID: "probe", Roles: roles, Method: "password", Patient: "p1"},
					Action: a, Type: kind.typ, Patient: kind.patient}
				on := bits&1 == 1
				f := facts{purpose: "TREAT", relationship: on, own: on, researchConsent: on, breakGlass: on, scopeOK: bits&2 == 2}
				if on {
					f.consentDeny = []string{"c"}
				}
				req, ents, _, _ := cedarRequest(c, r, &f)
				_, diag := cedar.Authorize(ps, ents, req)
				if len(diag.Errors) > 0 {
					d := diag.Errors[0]
					return fmt.Errorf("policy: @id %q fails to evaluate: %s", d.PolicyID, d.Message)
				}
			}
		}
	}
	return nil
}

// Decide implements Decider. It denies on any doubt: a facts lookup that
// fails, a policy that fails to evaluate, or no permit.
func (e *Engine) Decide(ctx context.Context, r Request) (d Decision) {
	defer func() {
		if recover() != nil {
			d = Decision{Policies: []string{idPolicyError}, Reason: "the access policy could not be evaluated"}
		}
	}()
	ps := e.set.Load()
	now := e.now()
	if r.Type == "Patient" && r.Patient == "" && r.ID != "" {
		r.Patient = r.ID // a Patient resource is its own compartment
	}
	p := r.Principal
	f := facts{
		purpose:    normalizePurpose(r.Purpose),
		own:        p.Patient != "" && r.Patient == p.Patient,
		breakGlass: p.BreakGlass.Active(now),
		scopeOK:    scopesAllow(r),
	}
	if r.Patient != "" && !(p.Has("operator") && operatorMethod(p.Method)) {
		if err := e.lookup(ctx, r, now, &f); err != nil {
			return Decision{Policies: []string{idFactsError}, Reason: "access facts could not be checked; try again"}
		}
	}
	allow, ids, failed := e.evaluate(ps, r, &f)
	if failed != nil {
		return Decision{Policies: failed, Reason: "the access policy could not be evaluated"}
	}
	if allow {
		return Decision{Allow: true, Policies: ids}
	}
	if len(ids) == 0 {
		why := "no policy allows this access"
		if p.BreakGlass != nil && !f.breakGlass {
			why = "no policy allows this access (the break-the-glass window has expired)"
		}
		return Decision{Policies: []string{idDefaultDeny}, Reason: why}
	}
	why := ps.reasons[cedar.PolicyID(ids[0])]
	if why == "" {
		why = "denied by policy " + ids[0]
	}
	if slices.Contains(ids, idConsentDeny) {
		for _, c := range f.consentDeny {
			ids = append(ids, "consent:"+c)
		}
	}
	return Decision{Policies: ids, Reason: why}
}

// evaluate runs the policy set on the request and its facts, or takes the
// outcome of an earlier identical evaluation (memo.go). It returns the
// decision and the sorted ids of the deciding policies (a fresh slice the
// caller may extend), or, when a policy failed to evaluate, the ids to
// report (nothing is memoised then).
func (e *Engine) evaluate(ps *policySet, r Request, f *facts) (allow bool, ids, failed []string) {
	req, ents, key, memoOK := cedarRequest(e.caches, r, f)
	if memoOK {
		if o, ok := ps.memo.get(key); ok {
			ids = make([]string, len(o.ids), len(o.ids)+len(f.consentDeny))
			copy(ids, o.ids)
			return o.allow, ids, nil
		}
	}
	dec, diag := cedar.Authorize(ps, ents, req)
	if len(diag.Errors) > 0 {
		failed = []string{idPolicyError}
		for _, de := range diag.Errors {
			failed = append(failed, string(de.PolicyID))
		}
		return false, nil, failed
	}
	ids = make([]string, 0, len(diag.Reasons)+len(f.consentDeny))
	for _, reason := range diag.Reasons {
		ids = append(ids, string(reason.PolicyID))
	}
	slices.Sort(ids)
	if memoOK {
		ps.memo.put(key, outcome{allow: dec == cedar.Allow, ids: slices.Clone(ids)})
	}
	return dec == cedar.Allow, ids, nil
}
