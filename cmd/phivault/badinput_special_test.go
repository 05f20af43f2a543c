package main

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
)

// envelopeCases: type and id mismatches, size and depth limits.
func (e *badEnv) envelopeCases() []badCase {
	pk := "Patient/" + e.patient
	obs := e.clone("Observation/" + e.obs)
	p := e.clone(pk)
	noID := e.clone(pk)
	delete(noID, "id")
	otherID := e.clone(pk)
	otherID["id"] = "someone-else"
	badID := e.clone(pk)
	badID["id"] = "bad id"
	noType := e.clone(pk)
	delete(noType, "resourceType")
	huge := append([]byte(`{"resourceType":"Patient","name":[{"family":"`), bytes.Repeat([]byte("a"), 17<<20)...)
	huge = append(huge, `"}]}`...)
	deep := func(n int) []byte {
		return []byte(`{"resourceType":"Patient","extension":` + strings.Repeat(`[{"url":"http://x","extension":`, n) + `[]` + strings.Repeat(`}]`, n) + `}`)
	}
	deepArr := []byte(`{"resourceType":"Patient","name":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}`)
	return []badCase{
		{name: "PUT Observation body to Patient URL", method: "PUT", path: "/fhir/" + pk, ct: fhirCT, body: e.compact(obs), want: 400},
		{name: "POST Observation body to Patient", method: "POST", path: "/fhir/Patient", ct: fhirCT, body: e.compact(obs), want: 400},
		{name: "POST Patient body to Observation", method: "POST", path: "/fhir/Observation", ct: fhirCT, body: e.compact(p), want: 400},
		{name: "PUT without resourceType", method: "PUT", path: "/fhir/" + pk, ct: fhirCT, body: e.compact(noType), want: 400},
		{name: "PUT without id", method: "PUT", path: "/fhir/" + pk, ct: fhirCT, body: e.compact(noID), want: 400},
		{name: "PUT with another id", method: "PUT", path: "/fhir/" + pk, ct: fhirCT, body: e.compact(otherID), want: 400},
		{name: "PUT with an invalid body id", method: "PUT", path: "/fhir/" + pk, ct: fhirCT, body: e.compact(badID), want: 422},
		{name: "POST a Bundle of type collection to Patient", method: "POST", path: "/fhir/Patient", ct: fhirCT, body: []byte(`{"resourceType":"Bundle","type":"collection"}`), want: 400},
		{name: "body over 16 MiB", method: "POST", path: "/fhir/Patient", ct: fhirCT, body: huge, want: 413},
		{name: "body over 16 MiB to /fhir", method: "POST", path: "/fhir", ct: fhirCT, body: huge, want: 413},
		{name: "extensions nested 200 deep", method: "POST", path: "/fhir/Patient", ct: fhirCT, body: deep(200), want: 400},
		{name: "extensions nested 5000 deep", method: "POST", path: "/fhir/Patient", ct: fhirCT, body: deep(5000), want: 400},
		{name: "arrays nested 100000 deep", method: "POST", path: "/fhir/Patient", ct: fhirCT, body: deepArr, want: 400},
	}
}

// bundleCases: bad batch and transaction bundles.
func (e *badEnv) bundleCases() []badCase {
	pat := func(extra string) string { return `{"resourceType":"Patient","active":true` + extra + `}` }
	entry := func(full, res, method, u string) string {
		return `{"fullUrl":"` + full + `","resource":` + res + `,"request":{"method":"` + method + `","url":"` + u + `"}}`
	}
	tx := func(kind string, entries ...string) []byte {
		return []byte(`{"resourceType":"Bundle","type":"` + kind + `","entry":[` + strings.Join(entries, ",") + `]}`)
	}
	u1, u2 := "urn:uuid:3f7d8e3a-1111-4c3e-8a1b-000000000001", "urn:uuid:3f7d8e3a-1111-4c3e-8a1b-000000000002"
	obsRef := func(ref string) string {
		return `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"` + ref + `"}}`
	}
	goodObs := entry(u2, obsRef(u1), "POST", "Observation")
	cases := []struct {
		name string
		body []byte
		want int
	}{
		{"dangling urn:uuid", tx("transaction", entry(u2, obsRef("urn:uuid:3f7d8e3a-1111-4c3e-8a1b-00000000dead"), "POST", "Observation")), 400},
		{"self reference to a missing entry", tx("transaction", entry(u1, `{"resourceType":"Patient","link":[{"other":{"reference":"`+u2+`"},"type":"seealso"}]}`, "POST", "Patient")), 400},
		{"duplicate fullUrl", tx("transaction", entry(u1, pat(""), "POST", "Patient"), entry(u1, pat(""), "POST", "Patient")), 400},
		{"duplicate fullUrl in a batch", tx("batch", entry(u1, pat(""), "POST", "Patient"), entry(u1, pat(""), "POST", "Patient")), 400},
		{"invalid resource fails the transaction", tx("transaction", entry(u1, pat(""), "POST", "Patient"), entry(u2, `{"resourceType":"Observation","status":"bogus","code":{"text":"x"}}`, "POST", "Observation")), 422},
		{"wrong type in an entry fails the transaction", tx("transaction", entry(u1, pat(""), "POST", "Patient"), entry(u2, pat(`,"birthDate":5`), "POST", "Patient")), 422},
		{"stale ifMatch fails the transaction", tx("transaction", entry(u1, pat(""), "POST", "Patient"), `{"request":{"method":"DELETE","url":"Patient/`+e.patient+`","ifMatch":"W/\"1\""}}`), 412},
		{"conditional reference matching nothing", tx("transaction", entry(u1, obsRef("Patient?identifier=urn:none|nothing"), "POST", "Observation")), 412},
		{"conditional reference matching many", tx("transaction", entry(u1, obsRef("Patient?gender=female"), "POST", "Observation")), 412},
		{"PUT entry id mismatch", tx("transaction", entry(u1, `{"resourceType":"Patient","id":"a"}`, "PUT", "Patient/b")), 400},
		{"entry resourceType mismatch", tx("transaction", entry(u1, pat(""), "POST", "Observation")), 400},
		{"entry without request", tx("transaction", `{"fullUrl":"`+u1+`","resource":`+pat("")+`}`), 400},
		{"entry without request in a batch", tx("batch", `{"fullUrl":"`+u1+`","resource":`+pat("")+`}`), 400},
		{"entry with a bad method", tx("transaction", entry(u1, pat(""), "FETCH", "Patient")), 400},
		{"entry with an absolute foreign url", tx("transaction", entry(u1, pat(""), "POST", "https://elsewhere.example/Patient")), 400},
		{"entry url with an unknown type", tx("transaction", entry(u1, pat(""), "POST", "Patients")), 400},
		{"entry url with a path trick", tx("transaction", `{"request":{"method":"GET","url":"Patient/../Observation/x"}}`), 400},
		{"POST entry with an id in the url", tx("transaction", entry(u1, pat(""), "POST", "Patient/x")), 400},
		{"POST entry without a resource", tx("transaction", `{"request":{"method":"POST","url":"Patient"}}`), 400},
		{"PATCH entry without a Binary", tx("transaction", `{"resource":`+pat("")+`,"request":{"method":"PATCH","url":"Patient/`+e.patient+`"}}`), 400},
		{"entry that is not an object", tx("transaction", `"entry"`), 400},
		{"entry resource that is not an object", tx("transaction", `{"resource":[1],"request":{"method":"POST","url":"Patient"}}`), 400},
		{"ifNoneExist on a PUT", tx("transaction", `{"resource":{"resourceType":"Patient","id":"x"},"request":{"method":"PUT","url":"Patient/x","ifNoneExist":"identifier=a|b"}}`), 400},
		{"Bundle.type collection", tx("collection", goodObs), 400},
		{"Bundle.type searchset", tx("searchset"), 400},
		{"Bundle.type missing", []byte(`{"resourceType":"Bundle","entry":[]}`), 400},
		{"Bundle.entry not an array", []byte(`{"resourceType":"Bundle","type":"transaction","entry":{}}`), 400},
		{"a Patient posted to the base", []byte(pat("")), 400},
		{"Bundle with an unknown element", []byte(`{"resourceType":"Bundle","type":"batch","bogus":1}`), 400},
	}
	var out []badCase
	for _, c := range cases {
		out = append(out, badCase{name: "bundle: " + c.name, method: "POST", path: "/fhir", ct: fhirCT, body: c.body, want: c.want})
	}
	return out
}

// headerCases: content types, If-Match, authentication, methods.
func (e *badEnv) headerCases() []badCase {
	pk := "/fhir/Patient/" + e.patient
	body := e.compact(e.clone("Patient/" + e.patient))
	var cs []badCase
	for _, ct := range []string{"text/plain", "application/xml", "application/fhir+xml", "application/x-www-form-urlencoded", "application/fhir+json; charset=latin1", "application/json-patch+json", "garbage;;", ""} {
		cs = append(cs, badCase{name: "content type " + ct, method: "PUT", path: pk, ct: ct, body: body, want: 415})
		cs = append(cs, badCase{name: "bundle content type " + ct, method: "POST", path: "/fhir", ct: ct, body: []byte(`{"resourceType":"Bundle","type":"batch"}`), want: 415})
	}
	cs = append(cs,
		badCase{name: "patch with fhir+json", method: "PATCH", path: pk, ct: fhirCT, body: []byte(`[]`), want: 415},
		badCase{name: "_search with json", method: "POST", path: "/fhir/Patient/_search", ct: fhirCT, body: []byte(`{}`), want: 415},
	)
	for _, im := range []string{"abc", `W/"x"`, `W/"0"`, `W/"-1"`, `""`, `W/"1.5"`, `W/"99999999999999999999"`} {
		cs = append(cs, badCase{name: "If-Match " + im, method: "PUT", path: pk, ct: fhirCT, body: body, hdr: map[string]string{"If-Match": im}, want: 400})
	}
	stale := map[string]string{"If-Match": `W/"1"`}
	cs = append(cs,
		badCase{name: "stale If-Match on PUT", method: "PUT", path: pk, ct: fhirCT, body: body, hdr: stale, want: 412},
		badCase{name: "stale If-Match on DELETE", method: "DELETE", path: pk, hdr: stale, want: 412},
		badCase{name: "stale If-Match on PATCH", method: "PATCH", path: pk, ct: "application/json-patch+json", body: []byte(`[{"op":"add","path":"/active","value":false}]`), hdr: stale, want: 412},
		badCase{name: "If-Match on PUT of a new resource", method: "PUT", path: "/fhir/Patient/never-was", ct: fhirCT, body: []byte(`{"resourceType":"Patient","id":"never-was"}`), hdr: stale, want: 412},
		badCase{name: "If-None-Exist not a query", method: "POST", path: "/fhir/Patient", ct: fhirCT, body: body, hdr: map[string]string{"If-None-Exist": "%%%"}, want: 400},
		badCase{name: "If-None-Exist matching many", method: "POST", path: "/fhir/Patient", ct: fhirCT, body: body, hdr: map[string]string{"If-None-Exist": "gender=female"}, want: 412},
		badCase{name: "conditional update matching many", method: "PUT", path: "/fhir/Patient?gender=female", ct: fhirCT, body: body, want: 412},
		badCase{name: "conditional update without a query", method: "PUT", path: "/fhir/Patient", ct: fhirCT, body: body, want: 400},
		badCase{name: "conditional delete matching many", method: "DELETE", path: "/fhir/Patient?gender=female", want: 412},
		badCase{name: "conditional delete without a query", method: "DELETE", path: "/fhir/Patient", want: 400},
		badCase{name: "no bearer token", method: "GET", path: pk, noAuth: true, want: 401},
		badCase{name: "bad bearer token", method: "GET", path: pk, noAuth: true, hdr: map[string]string{"Authorization": "Bearer nope"}, want: 401},
	)
	for _, m := range []struct{ method, path string }{
		{"DELETE", "/fhir/metadata"}, {"POST", "/fhir/metadata"}, {"PATCH", "/fhir/Patient"},
		{"POST", pk}, {"DELETE", "/fhir/_history"}, {"POST", "/fhir/_history"},
		{"POST", pk + "/_history/1"}, {"OPTIONS", pk}, {"PUT", "/fhir"},
	} {
		cs = append(cs, badCase{name: "method " + m.method + " " + m.path, method: m.method, path: m.path, want: 405})
	}
	return cs
}

// pathCases: tricks in types, ids and version ids.
func (e *badEnv) pathCases() []badCase {
	var cs []badCase
	for _, id := range []string{"..%2F..%2Fetc", "a%2Fb", "%2E%2E%2F", strings.Repeat("x", 65), strings.Repeat("y", 5000), "p%C3%A4tient",
		"a%20b", "a%00b", "a;b", "a%27b", "%F0%9F%98%80", "a_b", "a%5Cb"} {
		short := id[:min(len(id), 20)]
		cs = append(cs,
			badCase{name: "read id " + short, method: "GET", path: "/fhir/Patient/" + id, want: 400},
			badCase{name: "put id " + short, method: "PUT", path: "/fhir/Patient/" + id, ct: fhirCT, body: []byte(`{"resourceType":"Patient","id":"x"}`), want: 400},
		)
	}
	cs = append(cs,
		// ".." is a legal FHIR id (ids never reach a file system): unknown, not a trick.
		badCase{name: "read id ..", method: "GET", path: "/fhir/Patient/%2E%2E", want: 404},
		badCase{name: "put id .. with another body id", method: "PUT", path: "/fhir/Patient/%2E%2E", ct: fhirCT, body: []byte(`{"resourceType":"Patient","id":"x"}`), want: 400},
		badCase{name: "put id _history", method: "PUT", path: "/fhir/Patient/_history", ct: fhirCT, body: []byte(`{"resourceType":"Patient","id":"_history"}`), want: 400},
		badCase{name: "unknown type", method: "GET", path: "/fhir/Patients/x", want: 404},
		badCase{name: "lower-case type", method: "GET", path: "/fhir/patient/" + e.patient, want: 404},
		badCase{name: "abstract type", method: "GET", path: "/fhir/Resource/x", want: 404},
		badCase{name: "unknown id", method: "GET", path: "/fhir/Patient/no-such-patient", want: 404},
		badCase{name: "unknown version", method: "GET", path: "/fhir/Patient/" + e.patient + "/_history/999", want: 404},
		badCase{name: "version 0", method: "GET", path: "/fhir/Patient/" + e.patient + "/_history/0", want: 400},
		badCase{name: "version abc", method: "GET", path: "/fhir/Patient/" + e.patient + "/_history/abc", want: 400},
		badCase{name: "delete unknown id", method: "DELETE", path: "/fhir/Patient/no-such-patient", want: 404},
		badCase{name: "patch unknown id", method: "PATCH", path: "/fhir/Patient/no-such-patient", ct: "application/json-patch+json", body: []byte(`[]`), want: 404},
		badCase{name: "unknown operation", method: "GET", path: "/fhir/Patient/" + e.patient + "/$frobnicate", want: 404},
		badCase{name: "too deep a path", method: "GET", path: "/fhir/Patient/" + e.patient + "/_history/1/x", want: 404},
	)
	return cs
}

// queryCases: bad search, history and shaping parameters.
func (e *badEnv) queryCases() []badCase {
	pk := "/fhir/Patient/" + e.patient
	var cs []badCase
	for _, base := range []string{"/fhir/Patient", "/fhir/_history", "/fhir/Patient/_history", pk + "/_history"} {
		for _, v := range []string{"-1", "abc", "1.5", "", "1e3"} {
			if v == "" {
				continue
			}
			cs = append(cs, badCase{name: "_count=" + v + " on " + base, method: "GET", path: base + "?_count=" + url.QueryEscape(v), want: 400})
		}
	}
	for _, q := range []string{"_since=yesterday", "_since=2020-01-01", "_cursor=0", "_cursor=x", "_sort=name", "foo=bar"} {
		cs = append(cs, badCase{name: "history " + q, method: "GET", path: "/fhir/Patient/_history?" + q, want: 400})
	}
	for _, q := range []string{"_summary=bogus", "_summary=TRUE", "_elements=nosuch", "_elements=name,,gender", "_elements=" + url.QueryEscape("name.family")} {
		cs = append(cs, badCase{name: "read " + q, method: "GET", path: pk + "?" + q, want: 400})
		cs = append(cs, badCase{name: "search " + q, method: "GET", path: "/fhir/Patient?" + q, want: 400})
	}
	for _, q := range []string{"foo=bar", "birthdate:bogus=2020", "identifier:nosuchmodifier=x", "_include=Patient:nosuch", "_has=bad"} {
		cs = append(cs, badCase{name: "search " + q[:min(len(q), 30)], method: "GET", path: "/fhir/Patient?" + q, want: 400})
	}
	cs = append(cs, badCase{name: "_search with a bad form", method: "POST", path: "/fhir/Patient/_search", ct: "application/x-www-form-urlencoded", body: []byte("a=%zz"), want: 400})
	return cs
}

// patchCases: bad JSON Patch documents and patches that break the resource.
func (e *badEnv) patchCases() []badCase {
	pk := "/fhir/Patient/" + e.patient
	cases := []struct {
		name, body string
		want       int
	}{
		{"not JSON", `[{"op":`, 400},
		{"an object", `{"op":"add","path":"/active","value":true}`, 400},
		{"unknown op", `[{"op":"frobnicate","path":"/active","value":true}]`, 400},
		{"missing path", `[{"op":"add","value":true}]`, 400},
		{"failing test op", `[{"op":"test","path":"/id","value":"not-this"}]`, 422},
		{"remove of a missing element", `[{"op":"remove","path":"/photo"}]`, 422},
		{"replace of a missing element", `[{"op":"replace","path":"/photo/7","value":{}}]`, 422},
		{"move from a missing element", `[{"op":"move","from":"/nothing","path":"/x"}]`, 422},
		{"change the id", `[{"op":"replace","path":"/id","value":"other"}]`, 422},
		{"change the resourceType", `[{"op":"replace","path":"/resourceType","value":"Observation"}]`, 400},
		{"remove the resourceType", `[{"op":"remove","path":"/resourceType"}]`, 400},
		{"add an unknown element", `[{"op":"add","path":"/bogus","value":1}]`, 422},
		{"a bad code", `[{"op":"add","path":"/gender","value":"bogus"}]`, 422},
		{"a wrong type", `[{"op":"add","path":"/birthDate","value":19700101}]`, 422},
		{"a bad date", `[{"op":"add","path":"/birthDate","value":"1970-02-31"}]`, 422},
		{"replace the root", `[{"op":"replace","path":"","value":[1]}]`, 400},
	}
	var out []badCase
	for _, c := range cases {
		out = append(out, badCase{name: "patch: " + c.name, method: "PATCH", path: pk, ct: "application/json-patch+json", body: []byte(c.body), want: c.want})
	}
	out = append(out, badCase{name: "patch: bad id", method: "PATCH", path: "/fhir/Patient/" + url.PathEscape("a b"), ct: "application/json-patch+json", body: []byte(`[]`), want: 400})
	return append(out, badCase{name: fmt.Sprintf("patch: %d ops of nothing", 1), method: "PATCH", path: pk, ct: "application/json-patch+json", body: []byte(`[1]`), want: 400})
}
