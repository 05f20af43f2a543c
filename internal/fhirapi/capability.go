package fhirapi

import (
	"net/http"
	"time"

	"github.com/phivault/phivault/internal/fhir"
)

// SearchParams is implemented by a Searcher that can list the parameters it
// answers for a type, for the CapabilityStatement.
type SearchParams interface {
	Params(typ string) []SearchParamInfo
}

// SearchParamInfo describes one supported search parameter.
type SearchParamInfo struct {
	Name, Type, Definition string
}

// capabilities serves /metadata: a CapabilityStatement that claims only
// what this server does. It needs no authentication decision beyond being
// an authenticated caller, and holds no patient data.
func (a *API) capabilities(c *call) error {
	c.ev.Interaction, c.ev.Action = "capabilities", "R"
	sp, _ := a.Search.(SearchParams)
	var resources []any
	for _, t := range fhir.ResourceTypes() {
		if t == "AuditEvent" { // the audit log: read and search only
			resources = append(resources, auditEventCapability())
			continue
		}
		r := map[string]any{
			"type": t,
			"interaction": []any{
				code("read"), code("vread"), code("update"), code("patch"), code("delete"),
				code("history-instance"), code("history-type"), code("create"), code("search-type"),
			},
			"versioning":        "versioned-update",
			"readHistory":       true,
			"updateCreate":      true,
			"conditionalCreate": true,
			"conditionalUpdate": true,
			"conditionalDelete": "single",
		}
		if sp != nil {
			var ps []any
			for _, p := range sp.Params(t) {
				ps = append(ps, map[string]any{"name": p.Name, "type": p.Type, "definition": p.Definition})
			}
			if len(ps) > 0 {
				r["searchParam"] = ps
			}
		}
		if t == "Patient" {
			r["operation"] = append([]any{map[string]any{"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}}, auditOperations()...)
		}
		resources = append(resources, r)
	}
	cs := map[string]any{
		"resourceType":   "CapabilityStatement",
		"status":         "active",
		"date":           a.started.UTC().Format(time.RFC3339),
		"kind":           "instance",
		"software":       map[string]any{"name": "phivault", "version": a.Version},
		"implementation": map[string]any{"description": "phivault FHIR R4 server", "url": a.Base},
		"fhirVersion":    "4.0.1",
		"format":         []any{"application/fhir+json"},
		"patchFormat":    []any{"application/json-patch+json"},
		"rest": []any{map[string]any{
			"mode":          "server",
			"documentation": searchDocumentation,
			"security": map[string]any{
				"cors": true,
				"service": []any{map[string]any{"coding": []any{map[string]any{
					"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}}}},
				"description": "Bearer tokens (Authorization: Bearer ...): SMART on FHIR access tokens (see .well-known/smart-configuration) or operator tokens. Every access is decided by policy and audited before data is returned.",
			},
			"resource":    resources,
			"interaction": []any{code("transaction"), code("batch"), code("history-system")},
		}},
	}
	if a.Export.Barrier != nil {
		rest := cs["rest"].([]any)[0].(map[string]any)
		rest["operation"] = []any{map[string]any{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}}
	}
	if err := a.record(c); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, cs)
	return nil
}

// searchDocumentation says how search works here and which standard
// parameters are not offered, and why.
const searchDocumentation = "Search runs over blind index tokens (keyed hashes); resource bodies are encrypted at rest. " +
	"_text and _content are not supported: full-text search needs an index of the words of the narrative or of the " +
	"whole resource, and a blind token per word would still reveal which records share which words (word frequencies " +
	"over clinical free text), while a plaintext word index would put patient data in the database. " +
	"_filter, _query, _list, _containedType and _contained are not supported either."

func code(s string) map[string]any { return map[string]any{"code": s} }
