package fhir

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/phivault/phivault/internal/fhir/internal/specfmt"
)

//go:embed spec_r4.json.gz
var specR4 []byte

type typeKind uint8

const (
	kindComplex typeKind = iota
	kindResource
	kindPrimitive
)

// typeDef describes what may appear inside a value of one type: a resource, a datatype, or
// the anonymous type of a backbone element (named by its path).
type typeDef struct {
	name     string
	kind     typeKind
	abstract bool
	re       *regexp.Regexp // anchored lexical pattern of a primitive
	elems    map[string]*elemDef
	required []group // element groups with min > 0
}

// group is one element of the definition; a choice element has one JSON name per type.
type group struct {
	path  string
	names []string
	min   int
}

// elemDef is one JSON property of a typeDef.
type elemDef struct {
	name       string // JSON name, such as "valueQuantity"
	ext        string // name of the primitive extension property: "_" + name
	typ        *typeDef
	min        int
	max        int       // -1: unbounded
	choice     []string  // all JSON names of a choice element, nil otherwise
	choiceName string    // the choice element's name, such as "value[x]"
	vs         *valueSet // required binding, nil when none or not expandable
	summary    bool      // part of the summary view
}

// valueSet is an expanded required value set.
type valueSet struct {
	url   string
	codes map[string]bool            // every code, whatever its system
	bySys map[string]map[string]bool // system -> codes
	list  string                     // short human list of codes for messages, "" when long
}

// spec is the loaded table.
type spec struct {
	types map[string]*typeDef
}

var loadSpec = sync.OnceValue(func() *spec {
	s, err := buildSpec(specR4)
	if err != nil {
		// The table is generated and embedded at build time; failure is a build defect.
		panic("fhir: embedded spec table: " + err.Error())
	}
	return s
})

func buildSpec(gz []byte) (*spec, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	var raw specfmt.Spec
	if err := json.NewDecoder(zr).Decode(&raw); err != nil {
		return nil, err
	}
	vsets := map[string]*valueSet{}
	for url, systems := range raw.ValueSets {
		vs := &valueSet{url: url, codes: map[string]bool{}, bySys: map[string]map[string]bool{}}
		var all []string
		for sys, codes := range systems {
			m := map[string]bool{}
			for _, c := range codes {
				m[c] = true
				vs.codes[c] = true
				all = append(all, c)
			}
			vs.bySys[sys] = m
		}
		if len(all) <= 12 {
			vs.list = strings.Join(sortedKeys(vs.codes), ", ")
		}
		vsets[url] = vs
	}

	s := &spec{types: map[string]*typeDef{}}
	// First pass: named types and the anonymous types of backbone elements.
	byPath := map[string]*typeDef{} // element path -> its type, for contentReference
	type pending struct {
		owner *typeDef
		el    specfmt.Element
	}
	var elems []pending
	for _, t := range raw.Types {
		td := &typeDef{name: t.Name, abstract: t.Abstract, elems: map[string]*elemDef{}}
		switch t.Kind {
		case "resource":
			td.kind = kindResource
		case "primitive-type":
			td.kind = kindPrimitive
			if t.Regex != "" {
				re, err := regexp.Compile(`^(?:` + t.Regex + `)$`)
				if err != nil {
					return nil, fmt.Errorf("%s: regex: %v", t.Name, err)
				}
				td.re = re
			}
		}
		s.types[t.Name] = td
		byPath[t.Name] = td
		parents := map[string]bool{}
		for _, el := range t.Elements {
			if i := strings.LastIndexByte(el.Path, '.'); i > 0 {
				parents[el.Path[:i]] = true
			}
		}
		for _, el := range t.Elements {
			if parents[el.Path] {
				byPath[el.Path] = &typeDef{name: el.Path, elems: map[string]*elemDef{}}
			}
		}
		for _, el := range t.Elements {
			elems = append(elems, pending{td, el})
		}
	}
	// Second pass: attach every element to its parent, resolving types.
	for _, p := range elems {
		el := p.el
		i := strings.LastIndexByte(el.Path, '.')
		parent := byPath[el.Path[:i]]
		if parent == nil {
			return nil, fmt.Errorf("%s: no parent", el.Path)
		}
		name := el.Path[i+1:]
		var vs *valueSet
		if el.ValueSet != "" {
			vs = vsets[el.ValueSet]
		}
		add := func(jsonName string, t *typeDef, choice []string) {
			e := &elemDef{name: jsonName, ext: "_" + jsonName, typ: t, min: el.Min, max: el.Max, choice: choice, vs: vs, summary: el.Summary}
			if choice != nil {
				e.choiceName = name
			}
			parent.elems[jsonName] = e
		}
		g := group{path: el.Path, min: el.Min}
		switch {
		case el.Ref != "":
			t := byPath[el.Ref]
			if t == nil {
				return nil, fmt.Errorf("%s: unresolved contentReference %s", el.Path, el.Ref)
			}
			add(name, t, nil)
			g.names = []string{name}
		case byPath[el.Path] != nil && !strings.HasSuffix(name, "[x]"):
			add(name, byPath[el.Path], nil) // backbone element with inline children
			g.names = []string{name}
		case strings.HasSuffix(name, "[x]"):
			base := strings.TrimSuffix(name, "[x]")
			for _, tc := range el.Types {
				g.names = append(g.names, base+strings.ToUpper(tc[:1])+tc[1:])
			}
			for j, tc := range el.Types {
				t := s.types[tc]
				if t == nil {
					return nil, fmt.Errorf("%s: unknown type %s", el.Path, tc)
				}
				add(g.names[j], t, g.names)
			}
		default:
			if len(el.Types) != 1 {
				return nil, fmt.Errorf("%s: %d types without [x]", el.Path, len(el.Types))
			}
			t := s.types[el.Types[0]]
			if t == nil {
				return nil, fmt.Errorf("%s: unknown type %s", el.Path, el.Types[0])
			}
			add(name, t, nil)
			g.names = []string{name}
		}
		if g.min > 0 {
			parent.required = append(parent.required, g)
		}
	}
	return s, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	// Insertion sort: value sets listed in messages are small.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// IsResourceType reports whether name is a concrete (non-abstract) R4 resource type.
func IsResourceType(name string) bool {
	t := loadSpec().types[name]
	return t != nil && t.kind == kindResource && !t.abstract
}
