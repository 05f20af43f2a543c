package fhirapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/phivault/phivault/internal/fhir"
)

// shape applies _elements and _summary to a resource body. Without either
// the stored body is returned as it is.
func shape(q url.Values, body []byte) ([]byte, error) {
	elems, summary := q.Get("_elements"), q.Get("_summary")
	if elems == "" && (summary == "" || summary == "false") {
		return body, nil
	}
	res, err := fhir.Parse(body)
	if err != nil {
		return nil, err
	}
	out, err := shapeResource(res, elems, summary)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// shapeResource returns the subset of res that _elements or _summary asks
// for, tagged SUBSETTED as the spec requires.
func shapeResource(res fhir.Resource, elems, summary string) (fhir.Resource, error) {
	typ := res.Type()
	keep := map[string]bool{"resourceType": true, "id": true, "meta": true}
	switch {
	case elems != "":
		for _, e := range strings.Split(elems, ",") {
			e = strings.TrimSpace(e)
			if e == "" || !fhir.IsElement(typ, e) {
				return nil, errorf(http.StatusBadRequest, "invalid", "_elements names an element that "+typ+" does not have")
			}
			keep[e] = true
		}
	case summary == "text":
		keep["text"] = true
		for k := range res {
			if fhir.IsMandatory(typ, k) {
				keep[k] = true
			}
		}
	case summary == "data":
		for k := range res {
			keep[k] = k != "text"
		}
	case summary == "true":
		for k := range res {
			if fhir.IsSummary(typ, k) {
				keep[k] = true
			}
		}
	default:
		return nil, errorf(http.StatusBadRequest, "invalid", "_summary must be true, false, text, data or count")
	}
	out := fhir.Resource{}
	for k, v := range res {
		if keep[k] {
			out[k] = v
		}
	}
	meta, _ := out["meta"].(map[string]any)
	m := map[string]any{}
	for k, v := range meta {
		m[k] = v
	}
	tags, _ := m["tag"].([]any)
	m["tag"] = append(append([]any(nil), tags...), map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"})
	out["meta"] = m
	return out, nil
}
