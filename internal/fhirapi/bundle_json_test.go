package fhirapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWriteBundle: the Bundle written with entries spliced in as text is
// the JSON that json.Marshal gives for the same members, each body appears
// in it byte for byte, and its length is announced. Bases, ids and modes
// that JSON must escape are escaped as json.Marshal escapes them.
func TestWriteBundle(t *testing.T) {
	body := []byte(`{"resourceType":"Patient","id":"p1","name":[{"family":"O'Brien <b>"}]}`)
	head := func() map[string]any {
		return map[string]any{"resourceType": "Bundle", "type": "searchset", "total": 2,
			"link": []any{map[string]any{"relation": "self", "url": "https://x/fhir/Patient?name=a&b=<c>"}}}
	}
	type entry struct{ base, typ, id, mode string }
	all := []entry{
		{"https://x/fhir", "Patient", "p1", "match"},
		{"https://x/fhir?a=<b>&c", "Patient", "p\"1\\\u2028é\x01", "include"},
		{"https://x/fhir", "Observation", "o.1-2", "match"},
	}
	for n := 0; n <= len(all); n++ {
		for _, outcome := range []bool{false, true} {
			var es entryList
			want := head()
			var wantEntries []any
			for _, e := range all[:n] {
				es.add(e.base, e.typ, e.id, body, e.mode)
				var res any
				json.Unmarshal(body, &res)
				wantEntries = append(wantEntries, map[string]any{"fullUrl": e.base + "/" + e.typ + "/" + e.id, "resource": res, "search": map[string]any{"mode": e.mode}})
			}
			if outcome {
				o := outcomeEntry("incomplete", `say "why"`)
				es.addJSON(o)
				var v any
				json.Unmarshal(o, &v)
				wantEntries = append(wantEntries, v)
			}
			if wantEntries != nil {
				want["entry"] = wantEntries
			}
			w := httptest.NewRecorder()
			writeBundle(w, 200, head(), &es)
			var got any
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("%d entries: not JSON: %v\n%s", n, err, w.Body)
			}
			wb, _ := json.Marshal(want)
			var wantV any
			json.Unmarshal(wb, &wantV)
			if d := cmp.Diff(wantV, got); d != "" {
				t.Errorf("%d entries, outcome %v (-json.Marshal +writeBundle):\n%s", n, outcome, d)
			}
			if n > 0 && !bytes.Contains(w.Body.Bytes(), body) {
				t.Errorf("the body is not embedded as it stands:\n%s", w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != fhirJSON {
				t.Errorf("Content-Type %q", ct)
			}
			if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(w.Body.Len()) {
				t.Errorf("Content-Length %q for %d bytes", cl, w.Body.Len())
			}
		}
	}
}

// TestAppendString: a string is encoded as json.Marshal encodes it, for
// every byte and for strings that mix escaped and plain ones.
func TestAppendString(t *testing.T) {
	var cases []string
	for c := range 256 {
		cases = append(cases, string([]byte{byte(c)}), "a"+string([]byte{byte(c)})+"b")
	}
	cases = append(cases, "", "é", "\u2028", "\u2029", "https://x/fhir/Patient/p-1.2", "<script>&amp;")
	for _, s := range cases {
		want, _ := json.Marshal(s)
		if got := appendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("%q: %s, json.Marshal %s", s, got[1:], want)
		}
		if got := appendURL(nil, "https://b", "Patient", s); string(got) != string(mustJSON("https://b/Patient/"+s)) {
			t.Errorf("url with id %q: %s", s, got)
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
