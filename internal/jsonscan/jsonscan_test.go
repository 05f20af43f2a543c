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
