package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// accepts reports whether Skip reads all of b as one value.
func accepts(b []byte) bool {
	s := New(b)
	return s.Skip() == nil && s.End()
}

var cases = []string{
	`{}`, `[]`, `""`, `0`, `-0.5e+3`, `true`, `false`, `null`, ` {"a" : [1, {"b":null}] } `,
	`"\u00e9\n\"\\"`, "\"\xff\"", `{"a":1,"a":2}`, `[[[[]]]]`,
	``, ` `, `{`, `{"a":}`, `{"a":01}`, `{"a":"\x"}`, `{"a":tru}`, `{"a":1}x`, "\"\x01\"", `{"a" 1}`,
	`[1,]`, `{,}`, `{"a":1,}`, `nul`, `nullx`, `1.`, `.5`, `+1`, `"`, `"\`, `"\u12"`, `[1 2]`, `{1:2}`,
}

// TestSkipAgreesWithValid: Skip accepts exactly what encoding/json does.
func TestSkipAgreesWithValid(t *testing.T) {
	for _, c := range cases {
		if got, want := accepts([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("%q: accepted %v, encoding/json %v", c, got, want)
		}
	}
	deep := strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001)
	if accepts([]byte(deep)) {
		t.Error("nesting beyond 10,000 levels accepted")
	}
	ok := strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000)
	if !accepts([]byte(ok)) {
		t.Error("nesting of 10,000 levels refused")
	}
}

// TestStrDecodes: a string's value is what encoding/json decodes,
// escapes and invalid UTF-8 (U+FFFD) included.
func TestStrDecodes(t *testing.T) {
	for _, c := range []string{`"plain"`, `"\u00e9\t\"\\\/"`, "\"a\xffb\"", `"\ud83d\ude00"`, `"\ud83d"`, `""`} {
		var want string
		if err := json.Unmarshal([]byte(c), &want); err != nil {
			t.Fatal(err)
		}
		got, err := New([]byte(c)).Str()
		if err != nil || string(got) != want {
			t.Errorf("%q: got %q, %v; want %q", c, got, err, want)
		}
	}
}

// TestFields: Object and Array hand each key and element to their
// callbacks, and a value of another type is skipped without a call.
func TestFields(t *testing.T) {
	s := New([]byte(`{"a":["x",1,"y"],"b":{"c":"z"},"d":5,"e":null}`))
	var got []string
	err := s.Object(func(k []byte) error {
		switch string(k) {
		case "a":
			return s.Array(func() error {
				v, err := s.StrOrSkip()
				if v != nil {
					got = append(got, string(v))
				}
				return err
			})
		case "b", "d":
			return s.Object(func(k []byte) error {
				v, err := s.Str()
				got = append(got, string(k)+"="+string(v))
				return err
			})
		case "e":
			return s.Null()
		}
		return s.Skip()
	})
	if err != nil || !s.End() || strings.Join(got, " ") != "x y c=z" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// FuzzSkip: the scanner never panics and accepts exactly the JSON that
// encoding/json accepts; a string it accepts decodes to the same value.
func FuzzSkip(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := accepts(b), json.Valid(b); got != want {
			t.Fatalf("%q: accepted %v, encoding/json %v", b, got, want)
		}
		var want string
		if strings.HasPrefix(strings.TrimLeft(string(b), " \t\r\n"), `"`) && json.Unmarshal(b, &want) == nil {
			s := New(b)
			got, err := s.Str()
			if err != nil || !s.End() || string(got) != want {
				t.Fatalf("%q: Str %q, %v; encoding/json %q", b, got, err, want)
			}
		}
	})
}

// TestPlainRun: the eight-byte test stops where a byte-by-byte scan
// stops, for every byte value at every position of a word and for every
// pair of bytes in one (a borrow from a lower byte must not hide a higher
// one, nor mark a plain one).
func TestPlainRun(t *testing.T) {
	slow := func(b []byte) int {
		i := 0
		for i < len(b) && plain[b[i]] {
			i++
		}
		return i
	}
	b := make([]byte, 11)
	check := func() {
		t.Helper()
		if got, want := plainRun(b, 0), slow(b); got != want {
			t.Fatalf("%q: plainRun %d, byte by byte %d", b, got, want)
		}
	}
	for p := range 8 {
		for c := range 256 {
			for q := p + 1; q <= 8; q++ {
				for _, d := range []byte{'a', 0, 0x1f, 0x20, '"', '\\', 0x7f, 0x80, 0xff} {
					for i := range b {
						b[i] = 'a'
					}
					b[p], b[q] = byte(c), d
					check()
				}
			}
		}
	}
	for c := range 256 { // every plain byte at once is still plain
		for i := range b {
			b[i] = byte(c)
		}
		check()
	}
}

// benchDoc is shaped like the documents the scanner reads on hot paths:
// an AuditEvent leaf and a resource body (short strings, codes, URLs,
// a few numbers, one longer text, escapes rare).
var benchDoc = []byte(`{"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"RESTful Operation"},` +
	`"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"read","display":"read"}],"action":"R","period":{"start":"2026-12-01T20:05:16.123456Z","end":"2026-12-01T20:05:16.124001Z"},` +
	`"recorded":"2026-12-01T20:05:16.124001Z","outcome":"0","agent":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type","code":"humanuser"}]},` +
	`"who":{"identifier":{"system":"urn:phivault:user","value":"u-0193a7c2-5f1e-7d3b-9a41-6c2e8f0d4b17"}},"requestor":true,"network":{"address":"10.12.3.44","type":"2"},` +
	`"policy":["urn:phivault:policy:default"],"purposeOfUse":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT"}]}]}],` +
	`"source":{"observer":{"display":"phivault node-1"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4"}]},` +
	`"entity":[{"what":{"reference":"Patient/0193a7c2-5f1e-7d3b-9a41-6c2e8f0d4b17"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1"},"role":{"code":"1"}},` +
	`{"what":{"reference":"Observation/0193a7c2-6a00-7000-8000-000000000042"},"type":{"code":"2"},"query":"T2JzZXJ2YXRpb24_cGF0aWVudD0xMjM=","detail":[{"type":"note","valueString":"Blood pressure 120/80 mmHg, taken seated after five minutes' rest; \"normal\" range"}]}],` +
	`"extension":[{"url":"urn:phivault:request-id","valueString":"7f3c2a9e1b"},{"url":"urn:phivault:break-glass","valueBoolean":false},{"url":"urn:phivault:bytes","valueInteger":1532}]}`)

// BenchmarkSkip reads a whole document without decoding it; BenchmarkStr
// decodes every string of it (keys and values), as the field readers do.
func BenchmarkSkip(b *testing.B) {
	b.SetBytes(int64(len(benchDoc)))
	for b.Loop() {
		if s := New(benchDoc); s.Skip() != nil {
			b.Fatal("not read")
		}
	}
}

func BenchmarkStr(b *testing.B) {
	b.SetBytes(int64(len(benchDoc)))
	for b.Loop() {
		s := New(benchDoc)
		if err := strs(s); err != nil {
			b.Fatal(err)
		}
	}
}

// strs reads any value, decoding every string in it.
func strs(s *Scanner) error {
	switch s.Next() {
	case '{':
		return s.Object(func([]byte) error { return strs(s) })
	case '[':
		return s.Array(func() error { return strs(s) })
	case '"':
		_, err := s.Str()
		return err
	}
	return s.Skip()
}
