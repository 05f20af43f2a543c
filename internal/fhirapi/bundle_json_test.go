package fhirapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWriteBundle: the Bundle written with entries spliced in as text is
// the JSON that json.Marshal gives for the same members, and each body
// appears in it byte for byte.
func TestWriteBundle(t *testing.T) {
	body := []byte(`{"resourceType":"Patient","id":"p1","name":[{"family":"O'Brien <b>"}]}`)
	head := func() map[string]any {
		return map[string]any{"resourceType": "Bundle", "type": "searchset", "total": 2,
			"link": []any{map[string]any{"relation": "self", "url": "https://x/fhir/Patient?name=a&b=<c>"}}}
	}
	entries := [][]byte{entryJSON("https://x/fhir/Patient/p1", body, "match"), outcomeEntry("incomplete", `say "why"`)}
	for _, n := range []int{0, 1, 2} {
		w := httptest.NewRecorder()
		writeBundle(w, 200, head(), entries[:n])
		var got any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("%d entries: not JSON: %v\n%s", n, err, w.Body)
		}
		want := head()
		if n > 0 {
			var es []any
			for _, e := range entries[:n] {
				var v any
				if err := json.Unmarshal(e, &v); err != nil {
					t.Fatal(err)
				}
				es = append(es, v)
			}
			want["entry"] = es
		}
		wb, _ := json.Marshal(want)
		var wantV any
		json.Unmarshal(wb, &wantV)
		if d := cmp.Diff(wantV, got); d != "" {
			t.Errorf("%d entries (-json.Marshal +writeBundle):\n%s", n, d)
		}
		if n > 0 && !bytes.Contains(w.Body.Bytes(), body) {
			t.Errorf("the body is not embedded as it stands:\n%s", w.Body)
		}
		if ct := w.Header().Get("Content-Type"); ct != fhirJSON {
			t.Errorf("Content-Type %q", ct)
		}
	}
}
