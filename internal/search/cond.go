package search

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/phivault/phivault/internal/fhir/searchparam"
)

// alt is one alternative of a parameter value (the parts of a comma list):
// the index keys whose union holds every match, whether those keys decide
// the match alone, and the exact predicate on one decrypted value.
type alt struct {
	keys  [][]string // token inputs (kind, parts...)
	exact bool
	pred  func(v searchparam.Value) bool
	span  *[2]time.Time // a date alt: every match intersects [span[0], span[1]]
	nums  *[2]float64   // a number or quantity alt: every match lies in [nums[0], nums[1]]
}

var prefixes2 = []string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}

// cutPrefix splits a date/number/quantity value into its comparator and rest.
func cutPrefix(v string) (string, string) {
	if len(v) > 2 {
		for _, p := range prefixes2 {
			if v[:2] == p {
				return p, v[2:]
			}
		}
	}
	return "eq", v
}

// interval tests of the FHIR R4 prefixes for a search range q and a target
// range t (both closed).
func dateTest(op string, ql, qh, tl, th time.Time, now time.Time) bool {
	switch op {
	case "eq":
		return !tl.Before(ql) && !th.After(qh)
	case "ne":
		return tl.Before(ql) || th.After(qh)
	case "gt":
		return th.After(qh)
	case "lt":
		return tl.Before(ql)
	case "ge":
		return th.After(qh) || (!tl.Before(ql) && !th.After(qh))
	case "le":
		return tl.Before(ql) || (!tl.Before(ql) && !th.After(qh))
	case "sa":
		return tl.After(qh)
	case "eb":
		return th.Before(ql)
	case "ap":
		al, ah := apRange(ql, qh, now)
		return !th.Before(al) && !tl.After(ah)
	}
	return false
}

// apRange widens q by 10% of its distance from now (at least one day).
func apRange(ql, qh, now time.Time) (time.Time, time.Time) {
	d := now.Sub(ql)
	if d < 0 {
		d = -d
	}
	d = max(d/10, 24*time.Hour)
	return ql.Add(-d), qh.Add(d)
}

// dateCandidates is the range every match of op intersects; whole means
// every resource with a value (ne).
func dateCandidates(op string, ql, qh, now time.Time) (lo, hi time.Time, whole bool) {
	minT, maxT := searchparam.MinTime, searchparam.MaxTime
	switch op {
	case "eq":
		return ql, qh, false
	case "gt", "sa":
		return qh.Add(time.Nanosecond), maxT, false
	case "lt", "eb":
		return minT, ql.Add(-time.Nanosecond), false
	case "ge":
		return ql, maxT, false
	case "le":
		return minT, qh, false
	case "ap":
		l, h := apRange(ql, qh, now)
		return l, h, false
	}
	return minT, maxT, true
}

func (e *Engine) dateAlt(raw string) (alt, error) {
	op, v := cutPrefix(raw)
	ql, qh, _, err := searchparam.ParseDate(unescapedPlus(v))
	if err != nil {
		return alt{}, badRequest("invalid date value " + strconv.Quote(clip(raw)))
	}
	now := e.now()
	a := alt{pred: func(t searchparam.Value) bool { return dateTest(op, ql, qh, t.Low, t.High, now) }}
	if lo, hi, whole := dateCandidates(op, ql, qh, now); !whole {
		a.span, a.keys = &[2]time.Time{lo, hi}, bucketKeys(kDate, dateCover(lo, hi))
	}
	return a, nil
}

// unescapedPlus restores the '+' of a time zone offset that the client
// left unescaped in the URL, so that it arrived as a space
// ("2024-01-02T03:04:05 01:00"); any other value is returned unchanged.
func unescapedPlus(v string) string {
	n := len(v)
	if n < 17 || v[n-6] != ' ' || v[n-3] != ':' || !strings.Contains(v[:n-6], "T") {
		return v
	}
	return v[:n-6] + "+" + v[n-5:]
}

func numberAlt(raw string) (alt, error) {
	op, v := cutPrefix(raw)
	n, ok := parseNumber(v)
	if !ok {
		return alt{}, badRequest("invalid number value " + strconv.Quote(clip(raw)))
	}
	a := alt{pred: func(t searchparam.Value) bool { return n.test(op, ratOf(t)) }, keys: n.keys(op)}
	if lo, hi, ok := n.span(op); ok {
		a.nums = &[2]float64{lo, hi}
	}
	return a, nil
}

// quantityAlt parses [prefix]number[|system|code] or number||code.
func quantityAlt(raw string) (alt, error) {
	op, rest := cutPrefix(raw)
	parts := strings.Split(rest, "|")
	if len(parts) != 1 && len(parts) != 3 {
		return alt{}, badRequest("invalid quantity value " + strconv.Quote(clip(raw)))
	}
	n, ok := parseNumber(parts[0])
	if !ok {
		return alt{}, badRequest("invalid quantity value " + strconv.Quote(clip(raw)))
	}
	sys, code := "", ""
	if len(parts) == 3 {
		sys, code = parts[1], parts[2]
	}
	a := alt{pred: func(t searchparam.Value) bool {
		if code != "" && t.Code != code && !(sys == "" && t.Unit == code) {
			return false
		}
		if sys != "" && t.System != sys {
			return false
		}
		return n.test(op, ratOf(t))
	}, keys: n.keys(op)}
	if lo, hi, ok := n.span(op); ok {
		a.nums = &[2]float64{lo, hi}
	}
	return a, nil
}

// tokenAlt parses code, system|code, |code or system| (and, with
// of-type, system|code|value).
func tokenAlt(mod, v string) (alt, error) {
	switch mod {
	case "", "not":
		sys, code, hasBar := strings.Cut(v, "|")
		switch {
		case !hasBar:
			return alt{keys: [][]string{{kCode, v}}, exact: true,
				pred: func(t searchparam.Value) bool { return t.Code == v }}, nil
		case sys == "":
			return alt{keys: [][]string{{kNoSys, code}}, exact: true,
				pred: func(t searchparam.Value) bool { return t.System == "" && t.Code == code }}, nil
		case code == "":
			return alt{keys: [][]string{{kSys, sys}}, exact: true,
				pred: func(t searchparam.Value) bool { return t.System == sys }}, nil
		}
		return alt{keys: [][]string{{kTok, sys, code}}, exact: true,
			pred: func(t searchparam.Value) bool { return t.System == sys && t.Code == code }}, nil
	case "text":
		n := searchparam.Normalize(v)
		a := alt{pred: func(t searchparam.Value) bool {
			return strings.HasPrefix(searchparam.Normalize(t.Text), n) || strings.HasPrefix(searchparam.Normalize(t.Display), n)
		}}
		if key, whole := prefixKey(n); !whole || utf8.RuneCountInString(n) == maxPrefix {
			a.keys = [][]string{{kText, key}} // texts are indexed by their first maxPrefix runes
		}
		return a, nil
	case "of-type":
		p := strings.Split(v, "|")
		if len(p) != 3 || p[1] == "" || p[2] == "" {
			return alt{}, badRequest(":of-type takes system|code|value")
		}
		return alt{keys: [][]string{{kOfType, p[0], p[1], p[2]}}, exact: true, pred: func(t searchparam.Value) bool {
			return t.TypeSystem == p[0] && t.TypeCode == p[1] && t.Code == p[2]
		}}, nil
	}
	return alt{}, badRequest("modifier :" + mod + " is not supported on token parameters")
}

func stringAlt(mod, v string) (alt, error) {
	n := searchparam.Normalize(v)
	switch mod {
	case "":
		key, exact := prefixKey(n)
		return alt{keys: [][]string{{kPrefix, key}}, exact: exact,
			pred: func(t searchparam.Value) bool { return strings.HasPrefix(searchparam.Normalize(t.Text), n) }}, nil
	case "exact":
		return alt{keys: [][]string{{kExact, v}}, exact: true,
			pred: func(t searchparam.Value) bool { return t.Text == v }}, nil
	case "contains":
		return alt{pred: func(t searchparam.Value) bool { return strings.Contains(searchparam.Normalize(t.Text), n) }}, nil
	}
	return alt{}, badRequest("modifier :" + mod + " is not supported on string parameters")
}

func uriAlt(mod, v string) (alt, error) {
	switch mod {
	case "":
		return alt{keys: [][]string{{kURI, v}}, exact: true, pred: func(t searchparam.Value) bool { return t.Text == v }}, nil
	case "below":
		b := strings.TrimSuffix(v, "/")
		return alt{keys: [][]string{{kURIUp, b}}, exact: true, pred: func(t searchparam.Value) bool {
			return t.Text == b || strings.HasPrefix(t.Text, b+"/")
		}}, nil
	case "above":
		a := alt{exact: true, pred: func(t searchparam.Value) bool {
			return t.Text == v || strings.HasPrefix(v, t.Text+"/")
		}}
		for _, p := range uriPrefixes(v) {
			a.keys = append(a.keys, []string{kURI, p})
		}
		return a, nil
	}
	return alt{}, badRequest("modifier :" + mod + " is not supported on uri parameters")
}

// referenceAlt parses Type/id, id, an absolute URL, a canonical, or
// (with :identifier) system|value. mod may name the target type.
func (e *Engine) referenceAlt(mod, v, base string) (alt, error) {
	if mod == "identifier" {
		sys, val, hasBar := strings.Cut(v, "|")
		if !hasBar {
			return alt{keys: [][]string{{kRefAny, v}}, exact: true,
				pred: func(t searchparam.Value) bool { return t.Ref.IdentifierValue == v }}, nil
		}
		return alt{keys: [][]string{{kRefIdf, sys, val}}, exact: true, pred: func(t searchparam.Value) bool {
			return t.Ref.IdentifierSystem == sys && t.Ref.IdentifierValue == val
		}}, nil
	}
	if mod != "" && !e.params().IsResourceType(mod) {
		return alt{}, badRequest("modifier :" + mod + " is not supported on reference parameters")
	}
	ref := v
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	if strings.Contains(ref, "://") || strings.HasPrefix(ref, "urn:") {
		if base != "" && strings.HasPrefix(ref, base+"/") {
			ref = strings.TrimPrefix(ref, base+"/")
		} else {
			canon, _, _ := strings.Cut(v, "|")
			return alt{keys: [][]string{{kRefURL, ref}, {kURI, v}}, exact: true, pred: func(t searchparam.Value) bool {
				return (t.Ref.Base != "" && t.Ref.Base+"/"+t.Ref.Key() == ref) || t.Ref.Canonical == canon
			}}, nil
		}
	}
	typ, id, hasSlash := strings.Cut(ref, "/")
	if !hasSlash {
		typ, id = mod, ref
	}
	if id == "" || strings.Contains(id, "/") || (mod != "" && typ != mod) || (typ != "" && !e.params().IsResourceType(typ)) {
		return alt{}, badRequest("invalid reference value " + strconv.Quote(clip(v)))
	}
	if typ == "" {
		return alt{keys: [][]string{{kRefID, id}}, exact: true, pred: func(t searchparam.Value) bool { return t.Ref.Key() != "" && t.Ref.ID == id }}, nil
	}
	key := typ + "/" + id
	return alt{keys: [][]string{{kRef, key}}, exact: true, pred: func(t searchparam.Value) bool { return t.Ref.Key() == key }}, nil
}

// clip bounds a client value quoted back in an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// compositeAlt parses a$b[$c] against the composite's components; the
// first component (a token in every R4 composite) gives the index keys.
func (e *Engine) compositeAlt(p *searchparam.Param, v string) (alt, error) {
	parts := strings.Split(v, "$")
	if len(parts) != len(p.Components) {
		return alt{}, badRequest("composite parameter " + p.Code + " takes " + strconv.Itoa(len(p.Components)) + " values separated by $")
	}
	subs := make([]alt, len(parts))
	for i, c := range p.Components {
		var err error
		subs[i], err = e.valueAlt(c.Type, "", parts[i], "")
		if err != nil {
			return alt{}, err
		}
	}
	a := alt{pred: func(t searchparam.Value) bool {
		if len(t.Components) != len(subs) {
			return false
		}
		for i, s := range subs {
			if !s.pred(t.Components[i]) {
				return false
			}
		}
		return true
	}}
	if p.Components[0].Type == searchparam.Token {
		sys, code, hasBar := strings.Cut(parts[0], "|")
		switch {
		case !hasBar:
			a.keys = [][]string{{kComp, parts[0]}}
		case sys != "" && code != "":
			a.keys = [][]string{{kComp, sys, code}}
		}
	}
	return a, nil
}

// valueAlt parses one alternative of a parameter of type t.
func (e *Engine) valueAlt(t searchparam.Type, mod, v, base string) (alt, error) {
	switch t {
	case searchparam.Token:
		return tokenAlt(mod, v)
	case searchparam.String:
		return stringAlt(mod, v)
	case searchparam.URI:
		return uriAlt(mod, v)
	case searchparam.Reference:
		return e.referenceAlt(mod, v, base)
	}
	if mod != "" {
		return alt{}, badRequest("modifier :" + mod + " is not supported on " + string(t) + " parameters")
	}
	switch t {
	case searchparam.Date:
		return e.dateAlt(v)
	case searchparam.Number:
		return numberAlt(v)
	case searchparam.Quantity:
		return quantityAlt(v)
	}
	return alt{}, badRequest("search on " + string(t) + " parameters is not supported")
}
