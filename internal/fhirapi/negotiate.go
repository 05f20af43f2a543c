package fhirapi

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// The server speaks FHIR R4 (4.0.x) in JSON only. notAcceptable answers a
// request whose client asked for something else: a _format naming the XML
// or Turtle format, or an Accept header whose every acceptable media range
// names one of those formats or another FHIR version. It returns nil when
// JSON may be sent, which includes an absent or wildcard Accept and any
// media type that is not a FHIR format (operations such as $disclosures
// read their own _format values).
func notAcceptable(r *http.Request) *Error {
	// Every request passes here: parse the query only when it names _format.
	if strings.Contains(r.URL.RawQuery, "_format") {
		for _, f := range r.URL.Query()["_format"] {
			if otherFormat(f) {
				return errorf(http.StatusNotAcceptable, "not-supported",
					"_format "+strconv.Quote(f)+" is not supported; this server answers in JSON only (_format=json)")
			}
		}
	}
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return nil
	}
	refused := false
	for _, field := range accept {
		for _, rng := range strings.Split(field, ",") {
			if strings.TrimSpace(rng) == "" {
				continue
			}
			mt, params, err := mime.ParseMediaType(rng)
			if err != nil {
				continue // a malformed range says nothing either way
			}
			if q, ok := params["q"]; ok {
				if v, err := strconv.ParseFloat(q, 64); err == nil && v <= 0 {
					continue
				}
			}
			if otherFormat(mt) || !fhirR4(params["fhirversion"]) {
				refused = true
				continue
			}
			return nil
		}
	}
	if refused {
		return errorf(http.StatusNotAcceptable, "not-supported",
			"none of the Accept header's media types can be served; this server answers FHIR R4 in application/fhir+json")
	}
	return nil
}

// otherFormat reports whether a _format value or media type names a FHIR
// format other than JSON.
func otherFormat(f string) bool {
	if mt, _, err := mime.ParseMediaType(f); err == nil {
		f = mt
	}
	switch strings.ToLower(strings.TrimSpace(f)) {
	case "xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir",
		"ttl", "turtle", "text/turtle", "application/fhir+turtle", "application/x-turtle":
		return true
	}
	return false
}

// fhirR4 reports whether a media type's fhirVersion parameter (empty when
// absent) allows R4.
func fhirR4(v string) bool {
	return v == "" || v == "4.0" || v == "4.0.0" || v == "4.0.1"
}
