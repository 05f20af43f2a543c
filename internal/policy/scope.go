package policy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrNotResourceScope is returned by ParseScope for a scope that grants no
// access to resources: openid, fhirUser, launch, offline_access, or a
// malformed resource scope. Such scopes never allow a request.
var ErrNotResourceScope = errors.New("not a SMART resource scope")

// Scope is one parsed SMART on FHIR resource scope (v1 or v2), such as
// patient/Observation.read, user/*.cruds or
// patient/Observation.rs?category=laboratory.
type Scope struct {
	Context string // "patient", "user" or "system"
	Type    string // a resource type, or "*" for all
	// Perms are the SMART v2 permissions, in the order "cruds" (create,
	// read, update, delete, search). v1 read is "rs", write "cud", * "cruds".
	Perms string
	// Category restricts the scope to resources whose category matches:
	// every group must match, and a group matches when the resource has any
	// of its codes (granular scopes: ?category=a,b&category=c). nil: no
	// restriction.
	Category [][]string
}

// ParseScope parses a SMART resource scope. Anything else (including the
// non-resource scopes openid, fhirUser, launch/patient, offline_access)
// gives an error wrapping ErrNotResourceScope. Only the category parameter
// is understood in granular scopes; a scope with another parameter is
// refused rather than widened.
func ParseScope(s string) (Scope, error) {
	fail := func(why string) (Scope, error) {
		return Scope{}, fmt.Errorf("%w: %s", ErrNotResourceScope, why)
	}
	if len(s) > 512 {
		return fail("too long")
	}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok {
		return fail("no context")
	}
	if ctx != "patient" && ctx != "user" && ctx != "system" {
		return fail("unknown context")
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return fail("no permissions")
	}
	typ, perm := rest[:i], rest[i+1:]
	if !validType(typ) {
		return fail("bad resource type")
	}
	sc := Scope{Context: ctx, Type: typ}
	v1 := true
	switch perm {
	case "read":
		sc.Perms = "rs"
	case "write":
		sc.Perms = "cud"
	case "*":
		sc.Perms = "cruds"
	default:
		v1 = false
		p, ok := v2Perms(perm)
		if !ok {
			return fail("bad permissions")
		}
		sc.Perms = p
	}
	if hasQuery {
		if v1 {
			return fail("parameters need v2 permissions")
		}
		cat, err := parseCategory(query)
		if err != nil {
			return fail(err.Error())
		}
		sc.Category = cat
	}
	return sc, nil
}

func validType(t string) bool {
	if t == "*" {
		return true
	}
	if t == "" || len(t) > 64 || t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// v2Perms checks a v2 permission string: a non-empty subsequence of
// "cruds", in that order, without repeats.
func v2Perms(p string) (string, bool) {
	const all = "cruds"
	if p == "" {
		return "", false
	}
	j := 0
	for i := 0; i < len(p); i++ {
		k := strings.IndexByte(all[j:], p[i])
		if k < 0 {
			return "", false
		}
		j += k + 1
	}
	return p, true
}

func parseCategory(q string) ([][]string, error) {
	if q == "" {
		return nil, errors.New("empty parameters")
	}
	var groups [][]string
	for _, kv := range strings.Split(q, "&") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k != "category" {
			return nil, errors.New("only the category parameter is supported")
		}
		var codes []string
		for _, alt := range strings.Split(v, ",") {
			alt, err := url.QueryUnescape(alt)
			if err != nil {
				return nil, errors.New("bad escape in category")
			}
			if i := strings.LastIndexByte(alt, '|'); i >= 0 {
				alt = alt[i+1:] // system|code: the code decides
			}
			if alt == "" {
				return nil, errors.New("empty category")
			}
			codes = append(codes, alt)
		}
		groups = append(groups, codes)
	}
	return groups, nil
}

// perm is the SMART permission an action needs ("" for actions no scope
// grants: admin).
func perm(a Action) string {
	switch a {
	case Read, AuditRead:
		return "r"
	case Search:
		return "s"
	case Create:
		return "c"
	case Update:
		return "u"
	case Delete:
		return "d"
	case Export:
		return "rs"
	}
	return ""
}

// Allows reports whether s covers r. patient/ scopes cover only the
// launch patient (r.Principal.Patient): requests naming another patient,
// and writes naming none, are outside them. A category-limited scope needs
// r.Category to match, except for a search gate that names no category
// (each result is then decided with its own categories).
func (s Scope) Allows(r Request) bool {
	need := perm(r.Action)
	if need == "" {
		return false
	}
	for i := 0; i < len(need); i++ {
		if strings.IndexByte(s.Perms, need[i]) < 0 {
			return false
		}
	}
	if s.Type != "*" && s.Type != r.Type {
		return false
	}
	if s.Context == "patient" {
		launch := r.Principal.Patient
		switch {
		case launch == "":
			return false
		case r.Patient != "" && r.Patient != launch:
			return false
		case r.Patient == "" && r.Action != Read && r.Action != Search:
			return false
		}
	}
	for _, group := range s.Category {
		if !intersects(group, r.Category) && !(r.Action == Search && len(r.Category) == 0) {
			return false
		}
	}
	return true
}

// scopesAllow reports whether the principal's scopes cover r: true when
// the principal has no scope limit (Scopes nil), else when any parsable
// resource scope allows it.
func scopesAllow(r Request) bool {
	if r.Principal.Scopes == nil {
		return true
	}
	for _, raw := range r.Principal.Scopes {
		s, err := ParseScope(raw)
		if err == nil && s.Allows(r) {
			return true
		}
	}
	return false
}
