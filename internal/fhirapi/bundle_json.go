package fhirapi

import (
	"encoding/json"
	"net/http"
)

// Search and $everything answers embed many resource bodies. A body is
// JSON this server wrote (sealed when stored, authenticated when opened,
// or re-encoded by shape), so it goes into the Bundle as it stands, without
// the validating re-scan json.Marshal gives every embedded value.

// entryJSON returns one Bundle entry holding the JSON text resource.
func entryJSON(fullURL string, resource []byte, mode string) []byte {
	u, _ := json.Marshal(fullURL) // a string always encodes
	m, _ := json.Marshal(mode)
	out := make([]byte, 0, len(resource)+len(u)+len(m)+48)
	out = append(out, `{"fullUrl":`...)
	out = append(out, u...)
	out = append(out, `,"resource":`...)
	out = append(out, resource...)
	out = append(out, `,"search":{"mode":`...)
	out = append(out, m...)
	return append(out, "}}"...)
}

// writeBundle writes the Bundle whose members are head's, encoded by
// json.Marshal, and, when there are any, entries (each an entry's JSON
// text) as its entry member.
func writeBundle(w http.ResponseWriter, status int, head map[string]any, entries [][]byte) {
	if len(entries) == 0 {
		writeJSON(w, status, head)
		return
	}
	h, err := json.Marshal(head)
	if err != nil || len(h) < 2 {
		writeJSON(w, status, head) // answers with the internal error
		return
	}
	n := len(h) + 16
	for _, e := range entries {
		n += len(e) + 1
	}
	out := make([]byte, 0, n)
	out = append(out, h[:len(h)-1]...) // without its closing brace
	if len(h) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"entry":[`...)
	for i, e := range entries {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, e...)
	}
	out = append(out, "]}"...)
	writeBody(w, status, out)
}
