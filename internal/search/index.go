// Package search indexes resources under blind tokens and answers FHIR
// search queries from them. Which values are indexed comes from the R4
// SearchParameter definitions (package searchparam); every index entry is
// HMAC(index key, type, parameter, kind, normalized value), so the store
// learns equality patterns and nothing else (docs/search.md).
package search

import (
	"fmt"
	"unicode/utf8"

	"github.com/phivault/phivault/internal/barrier"
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
	reg *searchparam.Registry
	rec *records.Store
}

var _ records.Indexer = (*Engine)(nil)

// New returns an engine computing tokens with b over the R4 parameters.
// SetRecords must be called before Find.
func New(b *barrier.Barrier) *Engine {
	return &Engine{b: b, reg: searchparam.R4()}
}

// SetRecords gives the engine the store it searches (records and the
// engine depend on each other: records indexes through it).
func (e *Engine) SetRecords(r *records.Store) { e.rec = r }

// Token kinds. Each names one index family and what it reveals.
const (
	kTok     = "t"  // token: system|code
	kCode    = "c"  // token: code in any system
	kNoSys   = "n"  // token: code with no system
	kSys     = "s"  // token: system with any code
	kRef     = "r"  // reference: Type/id
	kRefID   = "ri" // reference: id alone
	kRefIdf  = "rf" // reference: :identifier system|value
	kExact   = "x"  // string: exact text
	kPrefix  = "p"  // string: normalized prefix
	kURI     = "u"  // uri
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
	vals, err := e.reg.Extract(res)
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
		for _, t := range e.valueTokens(typ, v) {
			add(t)
		}
	}
	return toks, e.compartment(typ, id, vals), nil
}

func (e *Engine) valueTokens(typ string, v searchparam.Value) []store.Token {
	p := v.Param
	switch v.Type {
	case searchparam.Token:
		out := []store.Token{e.tok(typ, p, kCode, v.Code)}
		if v.System != "" {
			out = append(out, e.tok(typ, p, kTok, v.System, v.Code), e.tok(typ, p, kSys, v.System))
		} else {
			out = append(out, e.tok(typ, p, kNoSys, v.Code))
		}
		return out
	case searchparam.Reference:
		var out []store.Token
		if k := v.Ref.Key(); k != "" {
			out = append(out, e.tok(typ, p, kRef, k), e.tok(typ, p, kRefID, v.Ref.ID))
		} else if v.Ref.Canonical != "" {
			out = append(out, e.tok(typ, p, kURI, v.Ref.Canonical))
		}
		if v.Ref.IdentifierValue != "" {
			out = append(out, e.tok(typ, p, kRefIdf, v.Ref.IdentifierSystem, v.Ref.IdentifierValue))
		}
		return out
	case searchparam.String:
		n := searchparam.Normalize(v.Text)
		out := []store.Token{e.tok(typ, p, kExact, v.Text)}
		for i, c := 0, 0; i < len(n) && c < maxPrefix; c++ {
			_, w := utf8.DecodeRuneInString(n[i:])
			i += w
			out = append(out, e.tok(typ, p, kPrefix, n[:i]))
		}
		return out
	case searchparam.URI:
		return []store.Token{e.tok(typ, p, kURI, v.Text)}
	}
	return nil
}

// compartment names the patient whose compartment holds the resource: the
// Patient itself, or the first Patient reference of the compartment's
// parameters in definition order.
func (e *Engine) compartment(typ, id string, vals []searchparam.Value) string {
	if typ == "Patient" {
		return id
	}
	for _, code := range e.reg.PatientCompartment(typ) {
		for _, v := range vals {
			if v.Param == code && v.Type == searchparam.Reference && v.Ref.Type == "Patient" && v.Ref.ID != "" {
				return v.Ref.ID
			}
		}
	}
	return ""
}

// prefixKey returns the indexed prefix of a normalized query string.
func prefixKey(n string) (key string, exact bool) {
	i, c := 0, 0
	for i < len(n) && c < maxPrefix {
		_, w := utf8.DecodeRuneInString(n[i:])
		i += w
		c++
	}
	return n[:i], i == len(n)
}
