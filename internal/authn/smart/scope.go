package smart

import (
	"errors"
	"net/url"
	"slices"
	"strings"
)

// Limits on what a request may carry; a longer scope string is refused
// rather than parsed.
const (
	maxScopeLen = 4096
	maxScopes   = 64
)

// errScope is the client-facing reason for an unreadable scope string.
var errScope = errors.New("the scope parameter is malformed")

// Scope is one parsed SMART scope. Resource scopes ("patient/Observation.rs",
// "user/*.read", "system/*.rs?category=laboratory") have Context, Type and
// Perms set; any other recognised scope ("openid", "launch/patient",
// "offline_access") has only Name.
type Scope struct {
	Name    string // the scope as written
	Context string // "patient", "user" or "system"; "" for non-resource scopes
	Type    string // resource type or "*"
	Perms   string // v2 permissions, a subsequence of "cruds" (v1 read = "rs", write = "cud", * = "cruds")
	Query   string // granular restriction such as "category=laboratory" (v2 only), normalised
}

// plain lists the non-resource scopes this server understands.
var plain = []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access", "online_access"}

// ParseScopes parses a space-separated scope string. Duplicates are
// dropped; an unknown or malformed scope fails the whole string (the
// client learns which one, no silent narrowing).
func ParseScopes(s string) ([]Scope, error) {
	if len(s) > maxScopeLen {
		return nil, errScope
	}
	var out []Scope
	seen := map[string]bool{}
	for f := range strings.FieldsSeq(s) {
		if seen[f] {
			continue
		}
		seen[f] = true
		sc, err := parseScope(f)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
		if len(out) > maxScopes {
			return nil, errScope
		}
	}
	return out, nil
}

func parseScope(f string) (Scope, error) {
	if slices.Contains(plain, f) {
		return Scope{Name: f}, nil
	}
	bad := errors.New("unknown or malformed scope " + quoteSafe(f))
	ctx, rest, ok := strings.Cut(f, "/")
	if !ok || (ctx != "patient" && ctx != "user" && ctx != "system") {
		return Scope{}, bad
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	typ, perm, ok := strings.Cut(rest, ".")
	if !ok || !validType(typ) {
		return Scope{}, bad
	}
	sc := Scope{Name: f, Context: ctx, Type: typ}
	switch perm {
	case "read":
		sc.Perms = "rs"
	case "write":
		sc.Perms = "cud"
	case "*":
		sc.Perms = "cruds"
	default:
		if !v2Perms(perm) {
			return Scope{}, bad
		}
		sc.Perms = perm
	}
	if hasQuery {
		if sc.Perms != perm { // granular restrictions exist in v2 only
			return Scope{}, bad
		}
		q, err := url.ParseQuery(query)
		if err != nil || len(q) == 0 {
			return Scope{}, bad
		}
		for k, vs := range q {
			if k == "" || len(vs) != 1 || vs[0] == "" {
				return Scope{}, bad
			}
		}
		sc.Query = q.Encode()
	}
	return sc, nil
}

// v2Perms reports whether p is a non-empty subsequence of "cruds".
func v2Perms(p string) bool {
	if p == "" {
		return false
	}
	i := 0
	for _, c := range []byte(p) {
		j := strings.IndexByte("cruds"[i:], c)
		if j < 0 {
			return false
		}
		i += j + 1
	}
	return true
}

// validType accepts "*" or a FHIR resource type name.
func validType(t string) bool {
	if t == "*" {
		return true
	}
	if t == "" || len(t) > 64 || t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for _, c := range []byte(t) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// covers reports whether holding g allows everything s asks for.
func (g Scope) covers(s Scope) bool {
	if g.Context == "" || s.Context == "" {
		return g.Name == s.Name
	}
	if g.Context != s.Context || (g.Type != "*" && g.Type != s.Type) {
		return false
	}
	for _, c := range []byte(s.Perms) {
		if strings.IndexByte(g.Perms, c) < 0 {
			return false
		}
	}
	return g.Query == "" || g.Query == s.Query
}

// coveredBy reports whether every scope in want is covered by one in have,
// and names the first that is not.
func coveredBy(want, have []Scope) (string, bool) {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h Scope) bool { return h.covers(w) }) {
			return w.Name, false
		}
	}
	return "", true
}

// names returns the scopes as written, in order.
func names(sc []Scope) []string {
	out := make([]string, 0, len(sc))
	for _, s := range sc {
		out = append(out, s.Name)
	}
	return out
}

func has(sc []Scope, name string) bool {
	return slices.ContainsFunc(sc, func(s Scope) bool { return s.Name == name })
}

func hasContext(sc []Scope, ctx string) bool {
	return slices.ContainsFunc(sc, func(s Scope) bool { return s.Context == ctx })
}

// quoteSafe quotes s for an error message a client sees, cut short and
// with control characters removed.
func quoteSafe(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s) + `"`
}
