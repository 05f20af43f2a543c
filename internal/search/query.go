package search

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/phivault/phivault/internal/fhir/searchparam"
	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/store"
)

// Limits on what one query may ask for.
const (
	maxCount    = 1000  // largest _count
	defCount    = 50    // _count when absent
	maxDepth    = 3     // nesting of chains and _has
	maxChainIDs = 2000  // ids one chain or _has may resolve to
	maxValues   = 100   // comma alternatives and repeats per query
	maxQueryLen = 16384 // bytes of the whole query
)

func badRequest(msg string) error {
	return &fhirapi.Error{Status: http.StatusBadRequest, Code: "invalid", Msg: msg}
}

func notSupported(msg string) error {
	return &fhirapi.Error{Status: http.StatusBadRequest, Code: "not-supported", Msg: msg}
}

// clause is one AND term of a query. Its tokens (an OR group) hold every
// match; neg turns it into an exclusion; check, when set, decides the
// match exactly on the decrypted values.
type clause struct {
	toks  []store.Token
	all   bool // no token restriction (check alone decides)
	neg   bool
	param string
	date  bool // param is a date parameter
	check func(vals []searchparam.Value) bool
	// span (a date clause) or nums (a number or quantity clause) is set
	// for a clause of one value: every match meets it. covered: another
	// clause's tokens stand for this one's candidates (narrowRanges); it
	// adds no token group, only its check.
	span    *[2]time.Time
	nums    *[2]float64
	covered bool
}

// plan is a parsed query.
type plan struct {
	typ          string
	clauses      []clause
	sort         []sortKey
	count        int
	total        string // "", none, estimate, accurate
	summaryCount bool
	include      []incl
	revinclude   []incl
	cursor       string
	ignored      []string
	warnings     []string   // about the answer's completeness
	canon        url.Values // the query without _cursor, for links
	// visible, when set, is the caller's read decision: a resource it
	// rejects matches nothing, counts nowhere and feeds no chain, _has or
	// _include (see scan and includes).
	visible fhirapi.Visibility
	caller  []string  // user and session the paging links are bound to
	dates   *dateOnly // see plan.dateOnly; set on first use
}

// parseOpts carries what parsing needs besides the query.
type parseOpts struct {
	base    string // public base URL (absolute references naming us)
	lenient bool   // ignore unknown parameters
	depth   int
	visible fhirapi.Visibility // the caller's read decision; nil: everything
}

// control parameters that do not select resources.
var control = map[string]bool{"_count": true, "_format": true, "_summary": true, "_elements": true,
	"_pretty": true, "_sort": true, "_total": true, "_include": true, "_revinclude": true, "_cursor": true}

func (e *Engine) parse(ctx context.Context, typ string, q url.Values, o parseOpts) (*plan, error) {
	if !e.params().IsResourceType(typ) {
		return nil, badRequest("unknown resource type " + strconv.Quote(clip(typ)))
	}
	if o.depth > maxDepth {
		return nil, badRequest("chains and _has are nested too deeply")
	}
	if n := len(q.Encode()); n > maxQueryLen {
		return nil, badRequest("the query is too long")
	}
	pl := &plan{typ: typ, count: defCount, canon: url.Values{}, visible: o.visible}
	keys := make([]string, 0, len(q))
	nvals := 0
	for k, vs := range q {
		keys = append(keys, k)
		nvals += len(vs)
	}
	if nvals > maxValues {
		return nil, badRequest("too many search parameter values")
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !utf8.ValidString(k) {
			return nil, badRequest("parameter names must be UTF-8")
		}
		for _, raw := range q[k] {
			if !utf8.ValidString(raw) {
				return nil, badRequest("parameter values must be UTF-8")
			}
		}
		if k == "_cursor" {
			pl.cursor = q.Get(k)
			continue
		}
		pl.canon[k] = q[k]
		base, _, _ := strings.Cut(k, ":")
		if control[base] {
			if err := e.parseControl(pl, k, q[k]); err != nil {
				return nil, named(k, err)
			}
			continue
		}
		for _, raw := range q[k] {
			c, err := e.parseClause(ctx, typ, k, raw, o)
			if err != nil {
				if fe, ok := err.(*fhirapi.Error); ok && o.lenient && fe.Code == "not-supported" {
					pl.ignored = append(pl.ignored, k)
					delete(pl.canon, k)
					break
				}
				return nil, named(k, err)
			}
			pl.clauses = append(pl.clauses, c)
		}
		if name, _, _ := strings.Cut(base, "."); e.pending(typ, name) {
			pl.warnings = append(pl.warnings, "search parameter "+strconv.Quote(name)+" of "+typ+
				" was added or changed after some resources were written; they are not found by it until 'phivault reindex' has run")
		}
	}
	e.narrowRanges(pl)
	return pl, nil
}

// named makes a refusal say which parameter of the query it is about,
// unless its message already quotes the parameter.
func named(key string, err error) error {
	fe, ok := err.(*fhirapi.Error)
	if !ok || strings.Contains(fe.Msg, key) {
		return err
	}
	n := *fe
	n.Msg = "search parameter " + strconv.Quote(clip(key)) + ": " + fe.Msg
	return &n
}

// parseClause turns one key=value into a clause.
func (e *Engine) parseClause(ctx context.Context, typ, key, raw string, o parseOpts) (clause, error) {
	if strings.HasPrefix(key, "_has:") {
		return e.hasClause(ctx, typ, key, raw, o)
	}
	head, rest, chained := strings.Cut(key, ".")
	name, mod, _ := strings.Cut(head, ":")
	if chained {
		return e.chainClause(ctx, typ, name, mod, rest, raw, o)
	}
	if name == "_id" && mod != "missing" { // _id:missing is answered like any parameter's
		if mod != "" {
			return clause{}, badRequest("_id takes no modifier")
		}
		c := clause{}
		for _, v := range splitOr(raw) {
			if v == "" {
				return clause{}, badRequest("empty value for _id")
			}
			c.toks = append(c.toks, e.tok(typ, "_id", kID, v))
		}
		return c, nil
	}
	p, ok := e.params().Lookup(typ, name)
	if !ok || p.Type == searchparam.Special {
		return clause{}, notSupported("unknown or unsupported search parameter " + strconv.Quote(clip(name)) + " for " + typ)
	}
	if mod == "missing" {
		if raw != "true" && raw != "false" {
			return clause{}, badRequest(":missing takes true or false")
		}
		return clause{toks: []store.Token{e.tok(typ, name, kPresent)}, neg: raw == "true"}, nil
	}
	if mod == "not" && p.Type != searchparam.Token {
		return clause{}, badRequest(":not applies to token parameters")
	}
	var alts []alt
	for _, v := range splitOr(raw) {
		if v == "" {
			return clause{}, badRequest("empty value for search parameter " + name)
		}
		var a alt
		var err error
		if p.Type == searchparam.Composite {
			if mod != "" {
				return clause{}, badRequest("composite parameters take no modifier")
			}
			a, err = e.compositeAlt(p, v)
		} else {
			a, err = e.valueAlt(p.Type, mod, v, o.base)
		}
		if err != nil {
			return clause{}, err
		}
		alts = append(alts, a)
	}
	c := clause{param: name, neg: mod == "not", date: p.Type == searchparam.Date}
	if len(alts) == 1 && !c.neg {
		c.span, c.nums = alts[0].span, alts[0].nums
	}
	exact := true
	for _, a := range alts {
		exact = exact && a.exact
		if a.keys == nil {
			c.all = true
		}
		for _, k := range a.keys {
			c.toks = append(c.toks, e.tok(typ, name, k[0], k[1:]...))
		}
	}
	if c.all {
		c.toks = []store.Token{e.tok(typ, name, kPresent)}
	}
	if !exact && !c.neg {
		c.check = func(vals []searchparam.Value) bool {
			for _, v := range vals {
				if v.Param != name {
					continue
				}
				for _, a := range alts {
					if a.pred(v) {
						return true
					}
				}
			}
			return false
		}
	}
	return c, nil
}

// prefixKey returns the indexed prefix of a normalized query string and
// whether the prefix token alone decides the match.
func prefixKey(n string) (key string, exact bool) {
	i, c := 0, 0
	for i < len(n) && c < maxPrefix {
		_, w := utf8.DecodeRuneInString(n[i:])
		i += w
		c++
	}
	return n[:i], i == len(n)
}

// splitOr splits a parameter value at unescaped commas; "\," "\$" "\|"
// and "\\" are escapes.
func splitOr(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
		case v[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, cur.String())
}
