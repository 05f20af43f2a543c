package detect

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// addLeafSeeds adds the leaves of a break-the-glass opening and a read,
// as audit.Event.Leaf writes them.
func addLeafSeeds(f *testing.F) {
	bg := breakGlass("u1", time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC))
	bg.Time = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	rd := read("u1", "p1")
	rd.Time = bg.Time
	f.Add(bg.Leaf())
	f.Add(rd.Leaf())
}

// FuzzDecodeLeaf holds decodeLeaf to json.Unmarshal into leafJSON: both
// refuse the same texts, and both give the same fields for the rest.
func FuzzDecodeLeaf(f *testing.F) {
	addLeafSeeds(f)
	for _, s := range []string{
		`{"resourceType":"AuditEvent","RECORDED":"x","entity":[{"what":{"reference":"Patient/1"},"type":{"code":"1"}},null]}`,
		`{"subtype":[{"code":"a"},{"code":"b"}],"subtype":[{}]}`,
		`{"agent":[{"requestor":true,"who":{"identifier":{"value":"u"}},"network":{"address":"1"}}],"agent":null}`,
		`{"extension":[{"url":"u","valueBoolean":false,"valueCode":null}],"outcome":null}`,
		`{"outcome":5}`, `{"agent":[{"requestor":"yes"}]}`, `{"subtype":{}}`, `{"recorded":"\u0041\ud800"}`,
		`null`, `[]`, `{}`, `{"a":[1,2,{"b":null}]}`, `{"a":1} x`, `{"\u212Aey":1,"reſourceType":"AuditEvent"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, leaf []byte) {
		var want, got leafJSON
		werr := json.Unmarshal(leaf, &want)
		gerr := decodeLeaf(leaf, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: decodeLeaf error %v, json.Unmarshal error %v", leaf, gerr, werr)
		}
		if werr != nil {
			return
		}
		if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("%q (-json.Unmarshal +decodeLeaf):\n%s", leaf, d)
		}
	})
}

// BenchmarkDecodeLeaf compares, in one run, decodeLeaf with json.Unmarshal
// on a read's leaf.
func BenchmarkDecodeLeaf(b *testing.B) {
	ev := read("u1", "p1")
	ev.Patients = []string{"p1", "p2"}
	leaf := ev.Leaf()
	for _, c := range []struct {
		name string
		fn   func([]byte, *leafJSON) error
	}{
		{"decodeLeaf", decodeLeaf},
		{"json.Unmarshal", func(b []byte, x *leafJSON) error { return json.Unmarshal(b, x) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(leaf)))
			for b.Loop() {
				var x leafJSON
				if err := c.fn(leaf, &x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
