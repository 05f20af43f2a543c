// Package table defines the on-disk format of the embedded search parameter
// table, shared by the generator and the searchparam package.
package table

// Table is the whole generated table (gzipped JSON).
type Table struct {
	FHIRVersion   string   `json:"fhirVersion"`
	ResourceTypes []string `json:"resourceTypes"` // concrete resource types, sorted
	// DomainResources lists the resource types that specialise DomainResource.
	DomainResources []string `json:"domainResources"`
	Params          []Param  `json:"params"`
	// Compartment maps a resource type to the parameter codes placing it in
	// the Patient compartment (CompartmentDefinition/patient).
	Compartment map[string][]string `json:"patientCompartment"`
}

// Param is one SearchParameter definition.
type Param struct {
	URL  string `json:"url"`
	Code string `json:"code"`
	Type string `json:"type"`
	// Expressions maps each base type to the part of the expression that
	// applies to it.
	Expressions map[string]string `json:"expr"`
	Targets     []string          `json:"targets,omitempty"`
	Components  []Component       `json:"components,omitempty"`
}

// Component is one component of a composite parameter.
type Component struct {
	Definition string `json:"definition"`
	Code       string `json:"code"`
	Type       string `json:"type"`
	Expression string `json:"expr"`
}
