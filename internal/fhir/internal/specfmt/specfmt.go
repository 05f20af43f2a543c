// Package specfmt defines the on-disk format of the generated FHIR spec table, shared by the
// generator (specgen) that writes it and package fhir that embeds and reads it.
package specfmt

// Spec is the whole table: every base type of FHIR R4 and the required value sets that could be
// expanded from code systems in the R4 package.
type Spec struct {
	FHIRVersion string `json:"fhirVersion"`
	Types       []Type `json:"types"`
	// ValueSets maps a ValueSet canonical url to code system url to the sorted allowed codes.
	ValueSets map[string]map[string][]string `json:"valueSets"`
}

// Type is one resource, complex datatype or primitive datatype.
type Type struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // "resource", "complex-type" or "primitive-type"
	Abstract bool   `json:"abstract,omitempty"`
	// Regex is the R4 lexical pattern of a primitive's value (unanchored, as in the spec).
	Regex    string    `json:"regex,omitempty"`
	Elements []Element `json:"elements,omitempty"`
}

// Element is one element of a type's snapshot, the root excluded.
type Element struct {
	// Path is the full element path, such as "Patient.contact.name" or "Observation.value[x]".
	Path string `json:"p"`
	Min  int    `json:"n,omitempty"`
	// Max is the maximum cardinality; -1 means unbounded ("*").
	Max int `json:"x"`
	// Types lists the allowed type codes (several for a choice element). Empty when Ref is set.
	Types []string `json:"t,omitempty"`
	// Ref is the contentReference target path without '#', such as "Questionnaire.item".
	Ref string `json:"r,omitempty"`
	// ValueSet is the canonical url of a required binding present in Spec.ValueSets.
	ValueSet string `json:"b,omitempty"`
	// Summary marks elements that are part of the summary view (_summary=true).
	Summary bool `json:"s,omitempty"`
}
