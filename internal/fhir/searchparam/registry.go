// Package searchparam knows what every FHIR R4 resource is indexed under.
// It owns the table of the official R4 SearchParameter definitions
// (generated from the HL7 package and embedded), the Patient compartment
// definition, custom SearchParameters added at run time, and Extract, which
// turns a resource into the typed, normalized values of each of its search
// parameters. It performs no I/O after loading the embedded table and keeps
// no patient data; callers decide how values are indexed (blind tokens).
package searchparam

//go:generate go run ./internal/gen -in ../../../../shared/data/fhir/hl7.fhir.r4.examples-4.0.1.tgz -out r4.json.gz

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/phivault/phivault/internal/fhir/fhirpath"
	"github.com/phivault/phivault/internal/fhir/searchparam/internal/table"
	"github.com/phivault/phivault/internal/fhir/searchparam/internal/union"
)

//go:embed r4.json.gz
var r4Table []byte

// Type is a search parameter type.
type Type string

// The search parameter types of FHIR R4.
const (
	String    Type = "string"
	Token     Type = "token"
	Reference Type = "reference"
	Date      Type = "date"
	Number    Type = "number"
	Quantity  Type = "quantity"
	URI       Type = "uri"
	Composite Type = "composite"
	Special   Type = "special"
)

func (t Type) valid() bool {
	switch t {
	case String, Token, Reference, Date, Number, Quantity, URI, Composite, Special:
		return true
	}
	return false
}

// Param is a search parameter as it applies to one base resource type (or
// to all resources when Base is "Resource"/"DomainResource"). Params held by
// a Registry are shared and must not be modified.
type Param struct {
	URL        string
	Code       string
	Type       Type
	Base       []string // base resource types
	Expression string   // FHIRPath, restricted to Base when Base has one type
	Targets    []string // resource types a reference parameter may point to
	Components []Component

	expr *fhirpath.Expression
}

// Compiled returns the parameter's expression as evaluated by Extract.
func (p *Param) Compiled() *fhirpath.Expression { return p.expr }

// Component is one part of a composite parameter, evaluated relative to
// each item the composite's expression selects.
type Component struct {
	Definition string // URL of the component's SearchParameter
	Code       string
	Type       Type
	Expression string

	expr *fhirpath.Expression
}

// Registry holds search parameters by base type. It is immutable and safe
// for concurrent use.
type Registry struct {
	byType      map[string]map[string]*Param // base type -> code -> param
	byURL       map[string]*Param
	types       map[string]bool // concrete resource types
	domain      map[string]bool // resource types that are DomainResources
	compartment map[string][]string
	merged      map[string][]*Param // resource type -> params incl. Resource ones, by code
}

var (
	r4Once sync.Once
	r4Reg  *Registry
	r4Err  error
)

// R4 returns the registry of the built-in R4 parameters, loading the
// embedded table once. It panics if the embedded table is corrupt, which a
// test guards against.
func R4() *Registry {
	r4Once.Do(func() { r4Reg, r4Err = load(r4Table) })
	if r4Err != nil {
		panic(fmt.Sprintf("searchparam: embedded R4 table: %v", r4Err))
	}
	return r4Reg
}

func load(raw []byte) (*Registry, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	var t table.Table
	if err := json.NewDecoder(zr).Decode(&t); err != nil {
		return nil, err
	}
	r := &Registry{byType: map[string]map[string]*Param{}, byURL: map[string]*Param{},
		types: map[string]bool{}, domain: map[string]bool{}, compartment: t.Compartment}
	for _, rt := range t.ResourceTypes {
		r.types[rt] = true
	}
	for _, rt := range t.DomainResources {
		r.domain[rt] = true
	}
	for _, tp := range t.Params {
		var comps []Component
		for _, c := range tp.Components {
			comps = append(comps, Component{Definition: c.Definition, Code: c.Code, Type: Type(c.Type), Expression: c.Expression})
		}
		for base, e := range tp.Expressions {
			p := &Param{URL: tp.URL, Code: tp.Code, Type: Type(tp.Type), Base: []string{base},
				Expression: e, Targets: tp.Targets, Components: comps}
			if err := p.compile(); err != nil {
				return nil, err
			}
			r.add(base, p)
		}
	}
	r.index()
	return r, nil
}

// systemCast matches a type test or cast to a FHIRPath System primitive.
var systemCast = regexp.MustCompile(`\b(as|is|ofType)(\(\s*|\s+)(Boolean|String|Integer|Decimal|Date|DateTime|Time)\b`)

// fhirCasts rewrites casts to System primitives into casts to the FHIR
// primitives they name: search expressions are evaluated over FHIR data,
// whose values are never System-typed, and definitions written this way
// (R4 Observation code-value-date: value.as(DateTime)) mean the FHIR type.
func fhirCasts(expr string) string {
	return systemCast.ReplaceAllStringFunc(expr, func(m string) string {
		sub := systemCast.FindStringSubmatch(m)
		name := strings.ToLower(sub[3][:1]) + sub[3][1:]
		return sub[1] + sub[2] + name
	})
}

func (p *Param) compile() error {
	e, err := fhirpath.Parse(fhirCasts(p.Expression))
	if err != nil {
		return fmt.Errorf("searchparam %s: %w", p.Code, err)
	}
	p.expr = e
	for i := range p.Components {
		c := &p.Components[i]
		if c.expr, err = fhirpath.Parse(fhirCasts(c.Expression)); err != nil {
			return fmt.Errorf("searchparam %s component %s: %w", p.Code, c.Code, err)
		}
	}
	return nil
}

func (r *Registry) add(base string, p *Param) {
	m := r.byType[base]
	if m == nil {
		m = map[string]*Param{}
		r.byType[base] = m
	}
	m[p.Code] = p
	if p.URL != "" {
		r.byURL[p.URL] = p
	}
}

// index precomputes each resource type's parameter list.
func (r *Registry) index() {
	r.merged = map[string][]*Param{}
	for rt := range r.types {
		seen := map[string]*Param{}
		for _, base := range []string{"Resource", "DomainResource", rt} {
			if base == "DomainResource" && !r.domain[rt] {
				continue
			}
			for code, p := range r.byType[base] {
				seen[code] = p // the most specific base wins
			}
		}
		list := make([]*Param, 0, len(seen))
		for _, p := range seen {
			list = append(list, p)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Code < list[j].Code })
		r.merged[rt] = list
	}
}

// Lookup returns the parameter code of resourceType, including the
// parameters every resource has (_id, _lastUpdated, _tag, _profile,
// _security, _source).
func (r *Registry) Lookup(resourceType, code string) (*Param, bool) {
	for _, base := range []string{resourceType, "DomainResource", "Resource"} {
		if base == "DomainResource" && !r.domain[resourceType] {
			continue
		}
		if p, ok := r.byType[base][code]; ok {
			return p, true
		}
	}
	return nil, false
}

// Params returns the parameters of resourceType sorted by code; the slice
// must not be modified. It is nil for an unknown type.
func (r *Registry) Params(resourceType string) []*Param { return r.merged[resourceType] }

// IsResourceType reports whether t is a concrete R4 resource type.
func (r *Registry) IsResourceType(t string) bool { return r.types[t] }

// PatientCompartment returns the parameter codes that link a resource of
// resourceType to its patient (CompartmentDefinition/patient); nil when the
// type is not in the Patient compartment.
func (r *Registry) PatientCompartment(resourceType string) []string {
	return slices.Clone(r.compartment[resourceType])
}

// With returns a new registry with custom parameters added; a custom
// parameter replaces a built-in one with the same base and code. Each must
// have a code, a valid type, known base types and an expression that
// parses; composite components must name known definitions.
func (r *Registry) With(custom ...*Param) (*Registry, error) {
	n := &Registry{byType: map[string]map[string]*Param{}, byURL: map[string]*Param{},
		types: r.types, domain: r.domain, compartment: r.compartment}
	for base, m := range r.byType {
		n.byType[base] = cloneParams(m)
	}
	for u, p := range r.byURL {
		n.byURL[u] = p
	}
	for _, c := range custom {
		if err := n.addCustom(c); err != nil {
			return nil, err
		}
	}
	n.index()
	return n, nil
}

func cloneParams(m map[string]*Param) map[string]*Param {
	out := make(map[string]*Param, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (r *Registry) addCustom(c *Param) error {
	if c == nil || !validCode(c.Code) || !c.Type.valid() || c.Type == Special || len(c.Base) == 0 {
		return fmt.Errorf("searchparam: custom parameter needs a code, a non-special type and a base")
	}
	for _, base := range c.Base {
		if !r.types[base] && base != "Resource" && base != "DomainResource" {
			return fmt.Errorf("searchparam %s: unknown base type %q", c.Code, base)
		}
		p := *c
		p.Base = []string{base}
		p.Expression = union.ForBase(c.Expression, base)
		if p.Expression == "" {
			return fmt.Errorf("searchparam %s: expression has no part for base %s", c.Code, base)
		}
		p.Components = slices.Clone(c.Components)
		for i := range p.Components {
			comp := &p.Components[i]
			if def, ok := r.byURL[comp.Definition]; ok && comp.Code == "" {
				comp.Code, comp.Type = def.Code, def.Type
			}
			if comp.Code == "" || !comp.Type.valid() {
				return fmt.Errorf("searchparam %s: component %q is not a known parameter", c.Code, comp.Definition)
			}
		}
		if p.Type == Composite && len(p.Components) == 0 {
			return fmt.Errorf("searchparam %s: composite without components", c.Code)
		}
		if err := p.compile(); err != nil {
			return err
		}
		r.add(base, &p)
	}
	return nil
}

func validCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
