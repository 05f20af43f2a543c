package policy

import (
	"encoding/json"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go"
)

// Evaluating the Cedar policy set is most of the cost of a decision, and
// a search decides every result with the same caller, type, patient and
// facts. When the set cannot tell entities apart by id, its answer is a
// function of the Cedar inputs other than the principal's and resource's
// ids (roles, principal attributes, action, resource attributes, context),
// so one evaluation can stand for all requests with the same inputs.
//
// Why ids cannot matter then: the entity store of a request holds only
// the caller (User, with Role parents), the target (its FHIR type) and the
// static action groups; attributes and context are booleans and strings.
// Cedar has no operator that reads an entity's id; a policy sees ids only
// by comparing an entity with an entity literal, or the caller with the
// target. So a set is id-free when it names no entity literal other than
// Role::"..." and Action::"..." (checked on its JSON form, see idFree),
// and requests whose target type is User, Role or Action (the only ones
// where the caller and the target could be related) are never memoised.

// decisionKey is every input of a Cedar evaluation except the ids.
type decisionKey struct {
	roles  string // the caller's roles, each followed by a NUL
	pbits  uint8  // principal attributes (caches.principal)
	action Action
	res    resourceKey
	ctx    contextKey
}

// outcome is a memoised Cedar evaluation that produced no error.
type outcome struct {
	allow bool
	ids   []string // the deciding policies, sorted; never modified
}

// outcomes memoises evaluations for one compiled policy set (a new set
// starts empty). It holds at most maxCached entries: keys include
// caller-chosen strings (type, purpose), so past the bound evaluations are
// simply not kept.
type outcomes struct {
	mu sync.RWMutex
	m  map[decisionKey]outcome
}

func newOutcomes() *outcomes { return &outcomes{m: map[decisionKey]outcome{}} }

// get returns the memoised outcome for k; a nil receiver has none.
func (o *outcomes) get(k decisionKey) (outcome, bool) {
	if o == nil {
		return outcome{}, false
	}
	o.mu.RLock()
	v, ok := o.m[k]
	o.mu.RUnlock()
	return v, ok
}

// put keeps v for k while there is room; a nil receiver keeps nothing.
func (o *outcomes) put(k decisionKey, v outcome) {
	if o == nil {
		return
	}
	o.mu.Lock()
	if len(o.m) < maxCached {
		o.m[k] = v
	}
	o.mu.Unlock()
}

// memoKey returns the key of a request's evaluation, and false when the
// request must be evaluated afresh (its target type could relate it to
// the caller, or a role name contains a NUL and would make keys collide).
func memoKey(r Request, pbits uint8, res resourceKey, ctx contextKey) (decisionKey, bool) {
	switch cedar.EntityType(r.Type) {
	case typeUser, typeRole, typeAction:
		return decisionKey{}, false
	}
	var b strings.Builder
	for _, role := range r.Principal.Roles {
		if strings.IndexByte(role, 0) >= 0 {
			return decisionKey{}, false
		}
		b.WriteString(role)
		b.WriteByte(0)
	}
	return decisionKey{roles: b.String(), pbits: pbits, action: r.Action, res: res, ctx: ctx}, true
}

// idFree reports whether no policy in list names an entity literal other
// than Role::"..." and Action::"..." (in its scope or its conditions).
// Any doubt (a policy that does not marshal) answers false.
func idFree(list []*cedar.Policy) bool {
	for _, p := range list {
		b, err := p.MarshalJSON()
		if err != nil {
			return false
		}
		var v any
		if json.Unmarshal(b, &v) != nil || !noIDLiteral(v) {
			return false
		}
	}
	return true
}

// noIDLiteral walks a policy's JSON form. An entity reference is an
// object with string "type" and "id" members (scope "entity"/"entities",
// and "__entity" in expressions); any other object carrying both is
// counted too, which can only turn memoisation off.
func noIDLiteral(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		typ, tok := v["type"].(string)
		_, iok := v["id"].(string)
		if tok && iok && typ != string(typeRole) && typ != string(typeAction) {
			return false
		}
		for _, x := range v {
			if !noIDLiteral(x) {
				return false
			}
		}
	case []any:
		for _, x := range v {
			if !noIDLiteral(x) {
				return false
			}
		}
	}
	return true
}
