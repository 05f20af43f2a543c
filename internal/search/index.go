// Package search indexes resources under blind tokens and answers FHIR
// search queries from them. Which values are indexed comes from the R4
// SearchParameter definitions (package searchparam); every index entry is
// HMAC(index key, type, parameter, kind, normalized value), so the store
// learns equality patterns and nothing else (docs/search.md).
package search

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/bodymemo"
	"github.com/phivault/phivault/internal/fhir/searchparam"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// maxPrefix is the longest string prefix indexed; longer queries use the
// maxPrefix token and are checked exactly after decryption.
const maxPrefix = 4

// Engine indexes and searches. It is safe for concurrent use.
type Engine struct {
	b   *barrier.Barrier
	reg atomic.Pointer[searchparam.Registry] // R4 plus the active custom parameters
	rec *records.Store
	now func() time.Time

	loadMu sync.Mutex                  // serializes LoadParams
	custom atomic.Pointer[customState] // what the last LoadParams took into use
	years  sync.Map                    // type+param -> []store.Token (yearTokens)
	// dateMemo holds the date values candidates were decided and ordered
	// by (decide), scoped by the registry and the parameters.
	dateMemo bodymemo.Memo[[]searchparam.Value]
}

var _ records.Indexer = (*Engine)(nil)

// New returns an engine computing tokens with b over the R4 parameters.
// SetRecords must be called before Find, and LoadParams to take the
// store's custom SearchParameters into use.
func New(b *barrier.Barrier) *Engine {
	e := &Engine{b: b, now: time.Now}
	e.reg.Store(searchparam.R4())
	e.custom.Store(&customState{})
	return e
}

// params returns the parameters in use.
func (e *Engine) params() *searchparam.Registry { return e.reg.Load() }

// SetRecords gives the engine the store it searches (records and the
// engine depend on each other: records indexes through it).
func (e *Engine) SetRecords(r *records.Store) { e.rec = r }

// Token kinds. Each names one index family; docs/search.md says what each
// reveals to someone holding the database.
const (
	kTok     = "t"  // token: system|code
	kCode    = "c"  // token: code in any system
	kNoSys   = "n"  // token: code with no system
	kSys     = "s"  // token: system with any code
	kText    = "tx" // token: normalized prefix of display/text (:text)
	kOfType  = "ot" // token: identifier type system|code|value (:of-type)
	kRef     = "r"  // reference: Type/id
	kRefID   = "ri" // reference: id alone
	kRefURL  = "ru" // reference: absolute URL of another server
	kRefIdf  = "rf" // reference: :identifier system|value
	kRefAny  = "ra" // reference: :identifier value in any system
	kExact   = "x"  // string: exact text
	kPrefix  = "p"  // string: normalized prefix
	kURI     = "u"  // uri (or canonical without version)
	kURIUp   = "ub" // uri: path prefix (for :below)
	kDate    = "d"  // date: calendar bucket
	kNum     = "q"  // number/quantity: magnitude bucket (any unit)
	kComp    = "k"  // composite: first component's token (code, system|code)
	kPresent = "m"  // parameter has a value (for :missing)
	kID      = "id" // _id
)

func (e *Engine) tok(typ, param, kind string, vals ...string) store.Token {
	parts := append([]string{"idx", typ, param, kind}, vals...)
	return e.b.Token(parts...)
}

// Index implements records.Indexer.
func (e *Engine) Index(res map[string]any) ([]store.Token, string, error) {
	typ, _ := res["resourceType"].(string)
	id, _ := res["id"].(string)
	if typ == "SearchParameter" {
		if err := e.checkCustom(res); err != nil {
			return nil, "", err
		}
	}
	return e.index(typ, id, res)
}

// IndexStored computes the tokens and compartment of a stored resource
// (rebuilding an index), without the checks a write of it passed then: a
// stored SearchParameter is indexed even if it is not in use.
func (e *Engine) IndexStored(res map[string]any) ([]store.Token, string, error) {
	typ, _ := res["resourceType"].(string)
	id, _ := res["id"].(string)
	return e.index(typ, id, res)
}

// index computes the tokens and compartment of res with the parameters in
// use.
func (e *Engine) index(typ, id string, res map[string]any) ([]store.Token, string, error) {
	vals, err := e.params().Extract(res)
	if err != nil {
		return nil, "", fmt.Errorf("search: index %s: %w", typ, err)
	}
	seen := map[string]bool{}
	var toks []store.Token
	add := func(t store.Token) {
		if !seen[string(t)] {
			seen[string(t)] = true
			toks = append(toks, t)
		}
	}
	add(e.tok(typ, "_id", kID, id))
	present := map[string]bool{}
	for _, v := range vals {
		if !present[v.Param] {
			present[v.Param] = true
			add(e.tok(typ, v.Param, kPresent))
		}
		if v.Param == "_id" {
			// Queries on _id read only its kID token (parseClause): the
			// generic token keys of Resource.id would be two more unique,
			// randomly placed index rows per write that nothing reads.
			continue
		}
		for _, k := range valueKeys(v) {
			add(e.tok(typ, v.Param, k[0], k[1:]...))
		}
	}
	return toks, e.compartment(typ, id, vals), nil
}

// valueKeys returns the token inputs (kind, parts...) of one value.
func valueKeys(v searchparam.Value) [][]string {
	switch v.Type {
	case searchparam.Token:
		out := [][]string{{kCode, v.Code}}
		if v.System != "" {
			out = append(out, []string{kTok, v.System, v.Code}, []string{kSys, v.System})
		} else {
			out = append(out, []string{kNoSys, v.Code})
		}
		// :text is rare: one token per text (its first maxPrefix runes),
		// shorter queries scan the parameter's candidates.
		for _, t := range []string{v.Text, v.Display} {
			if n := searchparam.Normalize(t); n != "" {
				key, _ := prefixKey(n)
				out = append(out, []string{kText, key})
			}
		}
		if v.TypeCode != "" {
			out = append(out, []string{kOfType, v.TypeSystem, v.TypeCode, v.Code})
		}
		return out
	case searchparam.Reference:
		var out [][]string
		if k := v.Ref.Key(); k != "" {
			out = append(out, []string{kRef, k}, []string{kRefID, v.Ref.ID})
			if v.Ref.Base != "" {
				out = append(out, []string{kRefURL, v.Ref.Base + "/" + k})
			}
		}
		if v.Ref.Canonical != "" {
			out = append(out, []string{kURI, v.Ref.Canonical})
			if v.Ref.Version != "" {
				out = append(out, []string{kURI, v.Ref.Canonical + "|" + v.Ref.Version})
			}
		}
		if v.Ref.IdentifierValue != "" {
			out = append(out, []string{kRefIdf, v.Ref.IdentifierSystem, v.Ref.IdentifierValue}, []string{kRefAny, v.Ref.IdentifierValue})
		}
		return out
	case searchparam.String:
		out := [][]string{{kExact, v.Text}}
		for _, p := range prefixes(searchparam.Normalize(v.Text)) {
			out = append(out, []string{kPrefix, p})
		}
		return out
	case searchparam.URI:
		out := [][]string{{kURI, v.Text}}
		for _, p := range uriPrefixes(v.Text) {
			out = append(out, []string{kURIUp, p})
		}
		return out
	case searchparam.Date:
		return bucketKeys(kDate, dateBuckets(v.Low, v.High))
	case searchparam.Number, searchparam.Quantity:
		// A quantity's units are checked after decryption: indexing them
		// per bucket would quadruple its tokens.
		return bucketKeys(kNum, numBuckets(v.Float))
	case searchparam.Composite:
		if len(v.Components) == 0 || v.Components[0].Type != searchparam.Token {
			return nil
		}
		c := v.Components[0]
		out := [][]string{{kComp, c.Code}}
		if c.System != "" {
			out = append(out, []string{kComp, c.System, c.Code})
		}
		return out
	}
	return nil
}

// prefixes returns the prefixes of n of 1 to maxPrefix runes.
func prefixes(n string) []string {
	var out []string
	for i, c := 0, 0; i < len(n) && c < maxPrefix; c++ {
		_, w := utf8.DecodeRuneInString(n[i:])
		i += w
		out = append(out, n[:i])
	}
	return out
}

// uriPrefixes returns the uri and its ancestors at '/' boundaries after
// the authority ("http://a/b/c" -> "http://a/b/c", "http://a/b", "http://a").
func uriPrefixes(u string) []string {
	start := 0
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + 3
	}
	out := []string{u}
	for i := len(u) - 1; i > start; i-- {
		if u[i] == '/' && len(out) < 16 {
			out = append(out, u[:i])
		}
	}
	return out
}

// compartment names the patient whose compartment holds the resource: the
// Patient itself, or the first Patient reference of the compartment's
// parameters in definition order.
func (e *Engine) compartment(typ, id string, vals []searchparam.Value) string {
	if typ == "Patient" {
		return id
	}
	for _, code := range e.params().PatientCompartment(typ) {
		for _, v := range vals {
			if v.Param == code && v.Type == searchparam.Reference && v.Ref.Type == "Patient" && v.Ref.ID != "" {
				return v.Ref.ID
			}
		}
	}
	return ""
}
