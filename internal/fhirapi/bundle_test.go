package fhirapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

type obj = map[string]any

func bundleOf(kind string, entries ...obj) obj {
	es := make([]any, len(entries))
	for i, e := range entries {
		es[i] = e
	}
	return obj{"resourceType": "Bundle", "type": kind, "entry": es}
}

// ent builds an entry; res may be nil.
func ent(fullURL, method, url string, res obj, req ...string) obj {
	r := obj{"method": method, "url": url}
	for i := 0; i+1 < len(req); i += 2 {
		r[req[i]] = req[i+1]
	}
	e := obj{"request": r}
	if fullURL != "" {
		e["fullUrl"] = fullURL
	}
	if res != nil {
		e["resource"] = res
	}
	return e
}

func patient(id, ident string) obj {
	p := obj{"resourceType": "Patient", "name": []any{obj{"family": "Test"}}}
	if id != "" {
		p["id"] = id
	}
	if ident != "" {
		p["identifier"] = []any{obj{"system": "urn:sys", "value": ident}}
	}
	return p
}

func observation(subject string) obj {
	return obj{"resourceType": "Observation", "status": "final", "code": obj{"text": "x"}, "subject": obj{"reference": subject}}
}

const (
	uuidA = "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"
	uuidB = "urn:uuid:9f0a2a1e-5e8b-4f0e-9d43-1d2b2f3c4a5b"
)

// entries returns the response entries and their response elements.
func entries(t testing.TB, b map[string]any) ([]obj, []obj) {
	t.Helper()
	list, _ := b["entry"].([]any)
	var es, rs []obj
	for _, v := range list {
		e := v.(map[string]any)
		es = append(es, e)
		r, _ := e["response"].(map[string]any)
		rs = append(rs, r)
	}
	return es, rs
}

// expressions returns the OperationOutcome's issue expressions.
func expressions(oo map[string]any) string {
	var out []string
	issues, _ := oo["issue"].([]any)
	for _, is := range issues {
		ex, _ := is.(map[string]any)["expression"].([]any)
		for _, x := range ex {
			out = append(out, x.(string))
		}
	}
	return strings.Join(out, " ")
}

func (env *testEnv) read(ref string) map[string]any {
	env.t.Helper()
	st, b := env.do("GET", "/fhir/"+ref, nil)
	if st != http.StatusOK {
		env.t.Fatalf("GET %s: %d %v", ref, st, b)
	}
	return b
}

func (env *testEnv) create(res obj) string {
	env.t.Helper()
	st, b := env.do("POST", "/fhir/"+res["resourceType"].(string), res)
	if st != http.StatusCreated {
		env.t.Fatalf("create: %d %v", st, b)
	}
	return b["id"].(string)
}

func TestTransactionRewritesReferences(t *testing.T) {
	env := newTestEnv(t)
	obs := observation(uuidA)
	obs["extension"] = []any{obj{"url": "http://example.org/ext", "valueReference": obj{"reference": uuidA}}}
	obs["contained"] = []any{obj{"resourceType": "RelatedPerson", "id": "rp", "patient": obj{"reference": uuidA}}}
	obs["performer"] = []any{obj{"reference": "#rp"}}
	// The Observation comes first: references may point forward.
	st, b := env.do("POST", "/fhir", bundleOf("transaction",
		ent(uuidB, "POST", "Observation", obs),
		ent(uuidA, "POST", "Patient", patient("ignored", "")),
	))
	if st != http.StatusOK || b["type"] != "transaction-response" {
		t.Fatalf("status %d, body %v", st, b)
	}
	es, rs := entries(t, b)
	if len(rs) != 2 || rs[0]["status"] != "201 Created" || rs[1]["status"] != "201 Created" {
		t.Fatalf("responses %v", rs)
	}
	ploc := rs[1]["location"].(string)
	if !strings.HasPrefix(ploc, "Patient/") || !strings.HasSuffix(ploc, "/_history/1") || strings.Contains(ploc, "ignored") {
		t.Fatalf("patient location %q", ploc)
	}
	pref := strings.TrimSuffix(ploc, "/_history/1")
	if rs[0]["etag"] != `W/"1"` || es[0]["resource"] == nil {
		t.Errorf("observation response %v", es[0])
	}
	if _, err := time.Parse(time.RFC3339Nano, rs[0]["lastModified"].(string)); err != nil {
		t.Errorf("lastModified: %v", err)
	}
	ev := env.lastAudit()
	if sub := ev["subtype"].([]any)[0].(map[string]any)["code"]; sub != "transaction" {
		t.Errorf("audit subtype %v", sub)
	}
	if n := len(ev["entity"].([]any)); n != 3 { // the patient, then two entities
		t.Errorf("audit entities: %d, want 3 (patient + 2 resources): %v", n, ev["entity"])
	}
	got := env.read(strings.TrimSuffix(rs[0]["location"].(string), "/_history/1"))
	js, _ := json.Marshal(got)
	if strings.Contains(string(js), "urn:uuid") {
		t.Errorf("urn:uuid left in stored resource: %s", js)
	}
	if got["subject"].(map[string]any)["reference"] != pref ||
		got["extension"].([]any)[0].(map[string]any)["valueReference"].(map[string]any)["reference"] != pref ||
		got["contained"].([]any)[0].(map[string]any)["patient"].(map[string]any)["reference"] != pref ||
		got["performer"].([]any)[0].(map[string]any)["reference"] != "#rp" {
		t.Errorf("references not rewritten as expected: %s", js)
	}
}

func TestTransactionOrder(t *testing.T) {
	env := newTestEnv(t)
	for _, id := range []string{"p1", "p2"} {
		if st, b := env.do("PUT", "/fhir/Patient/"+id, patient(id, "")); st != http.StatusCreated {
			t.Fatalf("setup: %d %v", st, b)
		}
	}
	upd := patient("p1", "")
	upd["gender"] = "female"
	st, b := env.do("POST", "/fhir", bundleOf("transaction",
		ent("", "GET", "Patient/p1", nil),
		ent("", "PUT", "Patient/p1", upd),
		ent(uuidA, "POST", "Patient", patient("", "")),
		ent("", "DELETE", "Patient/p2", nil),
	))
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, b)
	}
	es, rs := entries(t, b)
	want := []string{"200 OK", "200 OK", "201 Created", "204 No Content"}
	for i, w := range want {
		if rs[i]["status"] != w {
			t.Errorf("entry %d: status %v, want %s", i, rs[i]["status"], w)
		}
	}
	// The GET ran after the writes and sees the update.
	if r := es[0]["resource"].(map[string]any); r["gender"] != "female" {
		t.Errorf("GET saw %v, want the updated version", r)
	}
	// Writes were applied DELETE, POST, PUT: history is newest first.
	hs, err := env.api.Records.History(context.Background(), store.HistoryQuery{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, h := range hs {
		order = append(order, fmt.Sprintf("%s/%d", h.ID, h.VID))
	}
	if len(order) != 3 || order[0] != "p1/2" || order[2] != "p2/2" {
		t.Errorf("history (newest first) %v, want p1/2, <new>/1, p2/2", order)
	}
}

func TestTransactionAtomic(t *testing.T) {
	env := newTestEnv(t)
	env.create(patient("", "keep"))
	v0, l0 := env.counts()
	bad := observation(uuidA)
	delete(bad, "status") // required
	st, b := env.do("POST", "/fhir", bundleOf("transaction",
		ent(uuidA, "POST", "Patient", patient("", "")),
		ent("", "POST", "Observation", observation(uuidA)),
		ent("", "PUT", "Patient/x1", patient("x1", "")),
		ent("", "POST", "Observation", observation(uuidA)),
		ent("", "POST", "Observation", bad),
	))
	if st != http.StatusUnprocessableEntity || b["resourceType"] != "OperationOutcome" {
		t.Fatalf("status %d, body %v", st, b)
	}
	if ex := expressions(b); !strings.Contains(ex, "Bundle.entry[4].resource.status") {
		t.Errorf("outcome does not name the entry: %q", ex)
	}
	v1, l1 := env.counts()
	if v1 != v0 {
		t.Errorf("a failed transaction stored %d versions", v1-v0)
	}
	if l1 != l0+1 {
		t.Errorf("audit leaves %d -> %d, want one failure event", l0, l1)
	}
	if env.lastAudit()["outcome"] != "4" {
		t.Errorf("failure audited with outcome %v", env.lastAudit()["outcome"])
	}
	if st, _ := env.do("GET", "/fhir/Patient/x1", nil); st != http.StatusNotFound {
		t.Errorf("Patient/x1: %d, want 404", st)
	}
	// A stale ifMatch on the last entry also leaves nothing.
	st, b = env.do("POST", "/fhir", bundleOf("transaction",
		ent(uuidA, "POST", "Patient", patient("", "")),
		ent("", "PUT", "Patient/x1", patient("x1", ""), "ifMatch", `W/"7"`),
	))
	if st != http.StatusPreconditionFailed || !strings.Contains(expressions(b), "Bundle.entry[1]") {
		t.Errorf("stale ifMatch: %d %v", st, b)
	}
	if v2, _ := env.counts(); v2 != v0 {
		t.Errorf("stale ifMatch stored %d versions", v2-v0)
	}
}

func TestTransactionConditionalCreate(t *testing.T) {
	env := newTestEnv(t)
	existing := env.create(patient("", "one"))
	env.create(patient("", "dup"))
	env.create(patient("", "dup"))
	v0, _ := env.counts()

	// Match: the entry resolves to the existing resource, and so does its fullUrl.
	st, b := env.do("POST", "/fhir", bundleOf("transaction",
		ent(uuidA, "POST", "Patient", patient("", "one"), "ifNoneExist", "identifier=urn:sys|one"),
		ent("", "POST", "Observation", observation(uuidA)),
	))
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, b)
	}
	_, rs := entries(t, b)
	if rs[0]["status"] != "200 OK" || !strings.HasPrefix(rs[0]["location"].(string), "Patient/"+existing+"/") {
		t.Errorf("matched create: %v", rs[0])
	}
	obs := env.read(strings.TrimSuffix(rs[1]["location"].(string), "/_history/1"))
	if obs["subject"].(map[string]any)["reference"] != "Patient/"+existing {
		t.Errorf("subject %v, want Patient/%s", obs["subject"], existing)
	}
	if v1, _ := env.counts(); v1 != v0+1 {
		t.Errorf("stored %d versions, want only the Observation", v1-v0)
	}
	// No match: created.
	st, b = env.do("POST", "/fhir", bundleOf("transaction",
		ent(uuidA, "POST", "Patient", patient("", "two"), "ifNoneExist", "identifier=urn:sys|two")))
	if _, rs := entries(t, b); st != http.StatusOK || rs[0]["status"] != "201 Created" {
		t.Errorf("unmatched create: %d %v", st, b)
	}
	// Several matches: the whole transaction fails with 412.
	v2, _ := env.counts()
	st, b = env.do("POST", "/fhir", bundleOf("transaction",
		ent("", "POST", "Patient", patient("", "")),
		ent(uuidA, "POST", "Patient", patient("", "dup"), "ifNoneExist", "identifier=urn:sys|dup")))
	if st != http.StatusPreconditionFailed || !strings.Contains(expressions(b), "Bundle.entry[1]") {
		t.Errorf("ambiguous create: %d %v", st, b)
	}
	if v3, _ := env.counts(); v3 != v2 {
		t.Errorf("failed transaction stored %d versions", v3-v2)
	}
}

func TestTransactionConditionalUpdateDelete(t *testing.T) {
	env := newTestEnv(t)
	id := env.create(patient("", "u1"))
	gone := env.create(patient("", "d1"))
	upd := patient("", "u1")
	upd["gender"] = "male"
	st, b := env.do("POST", "/fhir", bundleOf("transaction",
		ent("", "PUT", "Patient?identifier=urn:sys|u1", upd),
		ent("", "PUT", "Patient?identifier=urn:sys|new", patient("", "new")),
		ent("", "DELETE", "Patient?identifier=urn:sys|d1", nil),
		ent("", "DELETE", "Patient?identifier=urn:sys|none", nil),
	))
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, b)
	}
	_, rs := entries(t, b)
	for i, w := range []string{"200 OK", "201 Created", "204 No Content", "204 No Content"} {
		if rs[i]["status"] != w {
			t.Errorf("entry %d: %v, want %s", i, rs[i]["status"], w)
		}
	}
	if p := env.read("Patient/" + id); p["gender"] != "male" {
		t.Errorf("conditional update not applied: %v", p)
	}
	if st, _ := env.do("GET", "/fhir/Patient/"+gone, nil); st != http.StatusGone {
		t.Errorf("conditionally deleted patient: %d, want 410", st)
	}
}

func TestTransactionConditionalReference(t *testing.T) {
	env := newTestEnv(t)
	pr := obj{"resourceType": "Practitioner", "identifier": []any{obj{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999"}}}
	prID := env.create(pr)
	env.create(obj{"resourceType": "Practitioner", "identifier": []any{obj{"system": "urn:sys", "value": "twin"}}})
	env.create(obj{"resourceType": "Practitioner", "identifier": []any{obj{"system": "urn:sys", "value": "twin"}}})
	withPerformer := func(ref string) obj {
		o := observation("Patient/p")
		o["performer"] = []any{obj{"reference": ref}}
		return o
	}
	st, b := env.do("POST", "/fhir", bundleOf("transaction",
		ent("", "POST", "Observation", withPerformer("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999"))))
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, b)
	}
	_, rs := entries(t, b)
	o := env.read(strings.TrimSuffix(rs[0]["location"].(string), "/_history/1"))
	if got := o["performer"].([]any)[0].(map[string]any)["reference"]; got != "Practitioner/"+prID {
		t.Errorf("performer %v, want Practitioner/%s", got, prID)
	}
	for _, tc := range []struct {
		ref    string
		status int
	}{
		{"Practitioner?identifier=urn:sys|nobody", http.StatusPreconditionFailed},
		{"Practitioner?identifier=urn:sys|twin", http.StatusPreconditionFailed},
		{"Practitioner?name=bad-param", http.StatusBadRequest},
	} {
		v0, _ := env.counts()
		st, b := env.do("POST", "/fhir", bundleOf("transaction",
			ent(uuidA, "POST", "Patient", patient("", "")),
			ent("", "POST", "Observation", withPerformer(tc.ref))))
		if st != tc.status || !strings.Contains(expressions(b), "Bundle.entry[1]") {
			t.Errorf("%s: %d %v, want %d naming Bundle.entry[1]", tc.ref, st, b, tc.status)
		}
		if v1, _ := env.counts(); v1 != v0 {
			t.Errorf("%s: stored %d versions", tc.ref, v1-v0)
		}
	}
}

func TestBadBundles(t *testing.T) {
	env := newTestEnv(t)
	env.api.MaxBundleEntries = 3
	p := patient("", "")
	for _, tc := range []struct {
		name   string
		body   any
		status int
		loc    string
	}{
		{"dangling urn:uuid", bundleOf("transaction", ent(uuidA, "POST", "Observation", observation(uuidB))), 400, "Bundle.entry[0].resource.subject.reference"},
		{"duplicate fullUrl", bundleOf("transaction", ent(uuidA, "POST", "Patient", p), ent(uuidA, "POST", "Patient", p)), 400, "Bundle.entry[1].fullUrl"},
		{"same resource twice", bundleOf("transaction", ent("", "PUT", "Patient/a", patient("a", "")), ent("", "DELETE", "Patient/a", nil)), 400, "Bundle.entry[1].request"},
		{"bad method", bundleOf("batch", ent("", "TRACE", "Patient", nil)), 400, "Bundle.entry[0].request.method"},
		{"unknown type in url", bundleOf("transaction", ent("", "POST", "Nope", p)), 400, "Bundle.entry[0].request.url"},
		{"path trick", bundleOf("transaction", ent("", "PUT", "Patient/../x", p)), 400, "Bundle.entry[0].request.url"},
		{"type mismatch", bundleOf("transaction", ent("", "POST", "Observation", p)), 400, "Bundle.entry[0].resource.resourceType"},
		{"id mismatch", bundleOf("transaction", ent("", "PUT", "Patient/b", patient("c", ""))), 400, "Bundle.entry[0].resource.id"},
		{"no request", bundleOf("batch", obj{"resource": p}), 400, "Bundle.entry[0].request"},
		{"POST without resource", bundleOf("transaction", ent("", "POST", "Patient", nil)), 400, "Bundle.entry[0].resource"},
		{"wrong bundle type", bundleOf("collection"), 400, "Bundle.type"},
		{"not a bundle", p, 400, ""},
		{"truncated", `{"resourceType":"Bundle","type":"batch","entry":[`, 400, ""},
		{"too many entries", bundleOf("batch", ent("", "GET", "Patient/a", nil), ent("", "GET", "Patient/a", nil), ent("", "GET", "Patient/a", nil), ent("", "GET", "Patient/a", nil)), 413, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v0, _ := env.counts()
			st, b := env.do("POST", "/fhir", tc.body)
			if st != tc.status || b["resourceType"] != "OperationOutcome" {
				t.Fatalf("%d %v, want %d OperationOutcome", st, b, tc.status)
			}
			if !strings.Contains(expressions(b), tc.loc) {
				t.Errorf("outcome %v does not name %s", b, tc.loc)
			}
			if v1, _ := env.counts(); v1 != v0 {
				t.Errorf("stored %d versions", v1-v0)
			}
		})
	}
}

func TestBatchIndependent(t *testing.T) {
	env := newTestEnv(t)
	bad := observation("Patient/x")
	delete(bad, "status")
	st, b := env.do("POST", "/fhir", bundleOf("batch",
		ent(uuidA, "POST", "Patient", patient("", "b1"), "ifNoneExist", "identifier=urn:sys|b1"),
		ent("", "POST", "Observation", bad),
		ent("", "POST", "Observation", observation(uuidA)), // refers to another entry
		ent("", "PUT", "Patient/b2", patient("b2", "")),
		ent("", "GET", "Patient/nope", nil),
	), "Prefer", "return=minimal")
	if st != http.StatusOK || b["type"] != "batch-response" {
		t.Fatalf("%d %v", st, b)
	}
	es, rs := entries(t, b)
	want := []string{"201 Created", "422 Unprocessable Entity", "400 Bad Request", "201 Created", "404 Not Found"}
	for i, w := range want {
		if rs[i]["status"] != w {
			t.Errorf("entry %d: %v, want %s", i, rs[i]["status"], w)
		}
		if strings.HasPrefix(w, "4") && rs[i]["outcome"].(map[string]any)["resourceType"] != "OperationOutcome" {
			t.Errorf("entry %d: no OperationOutcome: %v", i, rs[i])
		}
		if es[i]["resource"] != nil {
			t.Errorf("entry %d: resource returned despite return=minimal", i)
		}
	}
	if !strings.HasPrefix(rs[0]["location"].(string), "Patient/") || rs[0]["etag"] != `W/"1"` {
		t.Errorf("created entry response %v", rs[0])
	}
	env.read("Patient/b2")
	// The conditional create is idempotent through a batch too.
	st, b = env.do("POST", "/fhir", bundleOf("batch",
		ent(uuidA, "POST", "Patient", patient("", "b1"), "ifNoneExist", "identifier=urn:sys|b1")))
	if _, rs := entries(t, b); st != http.StatusOK || rs[0]["status"] != "200 OK" {
		t.Errorf("repeated conditional create: %d %v", st, b)
	}
}

func TestTransactionPatchMinimal(t *testing.T) {
	env := newTestEnv(t)
	id := env.create(patient("", "pt"))
	// [{"op":"add","path":"/gender","value":"other"}]
	data := "W3sib3AiOiJhZGQiLCJwYXRoIjoiL2dlbmRlciIsInZhbHVlIjoib3RoZXIifV0="
	st, b := env.do("POST", "/fhir", bundleOf("transaction",
		ent("", "PATCH", "Patient/"+id, obj{"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data}, "ifMatch", `W/"1"`),
	), "Prefer", "return=minimal")
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, b)
	}
	es, rs := entries(t, b)
	if rs[0]["status"] != "200 OK" || rs[0]["etag"] != `W/"2"` || es[0]["resource"] != nil {
		t.Errorf("patch response %v", es[0])
	}
	if p := env.read("Patient/" + id); p["gender"] != "other" {
		t.Errorf("patch not applied: %v", p)
	}
}
