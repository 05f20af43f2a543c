package fhirapi

import (
	"encoding/json"
	"net/http"
	"sync"
)

// Search and $everything answers embed many resource bodies. A body is
// JSON this server wrote (sealed when stored, authenticated when opened,
// or re-encoded by shape), so it goes into the Bundle as it stands, without
// the validating re-scan json.Marshal gives every embedded value. The
// entries are written one after another into one buffer, which goes back
// to a pool once the answer is written: a search's page is assembled
// without a copy per entry.

// entryList is the text of a Bundle's entry list as it is built.
type entryList struct {
	b []byte // the entries' JSON texts, comma-separated
	n int    // how many
}

// bufPool holds the buffers of answers written, for the next ones.
var bufPool sync.Pool // of *[]byte

// maxPooled bounds the buffers kept in bufPool: a large $everything page
// does not pin its memory.
const maxPooled = 256 << 10

func pooled() []byte {
	if p, _ := bufPool.Get().(*[]byte); p != nil {
		return (*p)[:0]
	}
	return nil
}

func release(b []byte) {
	if cap(b) <= maxPooled {
		bufPool.Put(&b)
	}
}

// next starts another entry.
func (es *entryList) next() {
	if es.b == nil {
		es.b = pooled()
	}
	if es.n > 0 {
		es.b = append(es.b, ',')
	}
	es.n++
}

// add appends an entry holding the JSON text resource, found at base/typ/id.
func (es *entryList) add(base, typ, id string, resource []byte, mode string) {
	es.next()
	es.b = append(es.b, `{"fullUrl":`...)
	es.b = appendURL(es.b, base, typ, id)
	es.b = append(es.b, `,"resource":`...)
	es.b = append(es.b, resource...)
	es.b = append(es.b, `,"search":{"mode":`...)
	es.b = appendString(es.b, mode)
	es.b = append(es.b, "}}"...)
}

// addJSON appends an entry given as its JSON text.
func (es *entryList) addJSON(entry []byte) {
	es.next()
	es.b = append(es.b, entry...)
}

// appendURL appends base/typ/id as a JSON string.
func appendURL(b []byte, base, typ, id string) []byte {
	if !plain(base) || !plain(typ) || !plain(id) {
		return appendString(b, base+"/"+typ+"/"+id)
	}
	b = append(b, '"')
	b = append(b, base...)
	b = append(b, '/')
	b = append(b, typ...)
	b = append(b, '/')
	b = append(b, id...)
	return append(b, '"')
}

// appendString appends s as json.Marshal encodes it.
func appendString(b []byte, s string) []byte {
	if plain(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s) // a string always encodes
	return append(b, q...)
}

// plain reports whether json.Marshal encodes s as itself in quotes:
// printable ASCII without a quote, backslash or HTML-significant byte.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c >= 0x80, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// writeBundle writes the Bundle whose members are head's, encoded by
// json.Marshal, and, when there are any, es as its entry member. es is
// spent: its buffer goes back to the pool.
func writeBundle(w http.ResponseWriter, status int, head map[string]any, es *entryList) {
	if es.n == 0 {
		writeJSON(w, status, head)
		return
	}
	h, err := json.Marshal(head)
	if err != nil || len(h) < 2 {
		writeJSON(w, status, head) // answers with the internal error
		return
	}
	out := append(pooled(), h[:len(h)-1]...) // without its closing brace
	if len(h) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"entry":[`...)
	out = append(out, es.b...)
	out = append(out, "]}"...)
	writeBody(w, status, out)
	release(es.b)
	release(out)
	*es = entryList{}
}
