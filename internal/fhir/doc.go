// Package fhir owns phivault's FHIR R4 resource model: strict JSON parsing and structural
// validation against the base R4 (4.0.1) StructureDefinitions.
//
// Parse turns request bytes into a Resource, rejecting anything that is not a single,
// well-formed, unambiguous JSON object (duplicate keys, trailing data, excessive nesting).
// Validate checks a Resource against a spec table generated from the official R4 package and
// embedded in the binary (see spec_r4.json.gz and internal/specgen): unknown elements, JSON
// shapes, cardinality, primitive formats, primitive extensions, required value-set bindings and
// reference syntax. OperationOutcome renders the findings for a client.
//
// Client safety: no error or issue produced here contains a value from the input. Messages
// name the rule that failed (the expected type, format or allowed codes) and locations are
// FHIRPath-like paths built from element names, so they can be logged and returned to clients
// without leaking patient data. Element names that do not look like FHIR names are not echoed.
//
// The package does no I/O beyond its embedded files and is safe for concurrent use.
package fhir

//go:generate go run ./internal/specgen -in ../../../shared/data/fhir/hl7.fhir.r4.examples-4.0.1.tgz -out spec_r4.json.gz
