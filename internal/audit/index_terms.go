package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// termsScan reads the terms of a leaf in one pass that looks only at the
// fields the index needs and skips the rest, without encoding/json's
// reflection: integration indexes every leaf, and this is several times
// faster than json.Unmarshal into a struct. Keys match exactly (FHIR JSON
// is case-sensitive), the last of duplicate keys wins, and a field of an
// unexpected JSON type carries no terms: the same terms as decoding into
// map[string]any and walking it (held to that by a test and a fuzzer).
// ok is false, with no terms, if the leaf is not a well-formed JSON
// object.
func termsScan(leaf []byte) (t leafTerms, ok bool) {
	s := scanner{b: leaf}
	var recorded []byte
	if s.next() != '{' {
		return leafTerms{}, false
	}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "recorded":
			v, err := s.strOrSkip()
			recorded = v
			return err
		case "agent":
			t.agent = ""
			found := false
			return s.array(func() error {
				var sys, val []byte
				err := s.object(func(k []byte) error {
					if string(k) != "who" {
						return s.skip()
					}
					return s.object(func(k []byte) error {
						if string(k) != "identifier" {
							return s.skip()
						}
						return s.object(func(k []byte) (err error) {
							switch string(k) {
							case "system":
								sys, err = s.strOrSkip()
							case "value":
								val, err = s.strOrSkip()
							default:
								err = s.skip()
							}
							return err
						})
					})
				})
				if err == nil && !found && string(sys) == "urn:phivault:user" && len(val) > 0 && len(val) <= maxIndexedTerm {
					t.agent, found = string(val), true
				}
				return err
			})
		case "entity":
			t.patients = nil
			return s.array(func() error {
				var ref, typ, role []byte
				err := s.object(func(k []byte) error {
					var dst *[]byte
					switch string(k) {
					case "what":
						dst = &ref
					case "type":
						dst = &typ
					case "role":
						dst = &role
					default:
						return s.skip()
					}
					want := "code"
					if dst == &ref {
						want = "reference"
					}
					return s.object(func(k []byte) (err error) {
						if string(k) != want {
							return s.skip()
						}
						*dst, err = s.strOrSkip()
						return err
					})
				})
				if err == nil && string(typ) == "1" && string(role) == "1" {
					if id, ok := bytes.CutPrefix(ref, []byte("Patient/")); ok {
						t.patients = addPatient(t.patients, string(id))
					}
				}
				return err
			})
		}
		return s.skip()
	})
	if err != nil || s.ws() != len(leaf) {
		return leafTerms{}, false
	}
	t.time = parseRecorded(string(recorded))
	return t, true
}

func addPatient(ps []string, id string) []string {
	if id == "" || len(id) > maxIndexedTerm {
		return ps
	}
	for _, p := range ps {
		if p == id {
			return ps
		}
	}
	return append(ps, id)
}

var errSyntax = errors.New("audit: leaf: not JSON")

// scanner walks JSON text. Its methods read one value at the current
// position (after whitespace) and return errSyntax on anything that is not
// well-formed there.
type scanner struct {
	b     []byte
	i     int
	depth int
}

// maxDepth bounds nesting, as encoding/json does (10,000), so that a
// forged leaf cannot exhaust the stack.
const maxDepth = 10000

// ws skips whitespace and returns the position.
func (s *scanner) ws() int {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return s.i
		}
	}
	return s.i
}

func (s *scanner) next() byte {
	if s.ws() >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// object reads an object, calling fn with each key; fn must read the
// value. Any other value is skipped without calling fn.
func (s *scanner) object(fn func(key []byte) error) error {
	if s.next() != '{' {
		return s.skip()
	}
	if s.depth++; s.depth > maxDepth {
		return errSyntax
	}
	defer func() { s.depth-- }()
	s.i++
	if s.next() == '}' {
		s.i++
		return nil
	}
	for {
		k, err := s.str()
		if err != nil {
			return err
		}
		if s.next() != ':' {
			return errSyntax
		}
		s.i++
		if err := fn(k); err != nil {
			return err
		}
		switch s.next() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// array reads an array, calling fn to read each element.
func (s *scanner) array(fn func() error) error {
	if s.next() != '[' {
		return s.skip()
	}
	if s.depth++; s.depth > maxDepth {
		return errSyntax
	}
	defer func() { s.depth-- }()
	s.i++
	if s.next() == ']' {
		s.i++
		return nil
	}
	for {
		if err := fn(); err != nil {
			return err
		}
		switch s.next() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// str reads a string and returns its value (unescaped).
func (s *scanner) str() ([]byte, error) {
	if s.next() != '"' {
		return nil, errSyntax
	}
	start := s.i
	s.i++
	escaped, high := false, false
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			raw := s.b[start:s.i]
			if !escaped && (!high || utf8.Valid(raw)) {
				return raw[1 : len(raw)-1], nil
			}
			// Escapes, or invalid UTF-8 that encoding/json turns into
			// U+FFFD: decode as it does.
			var v string
			if json.Unmarshal(raw, &v) != nil {
				return nil, errSyntax
			}
			return []byte(v), nil
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			return nil, errSyntax
		default:
			high = high || c >= 0x80
			s.i++
		}
	}
	return nil, errSyntax
}

// strOrSkip reads a string's value, or skips a value of another type
// and returns nil.
func (s *scanner) strOrSkip() ([]byte, error) {
	if s.next() != '"' {
		return nil, s.skip()
	}
	return s.str()
}

// skip reads any value.
func (s *scanner) skip() error {
	switch c := s.next(); {
	case c == '"':
		_, err := s.str()
		return err
	case c == '{':
		return s.object(func([]byte) error { return s.skip() })
	case c == '[':
		return s.array(s.skip)
	case c == 't' || c == 'f' || c == 'n' || c == '-' || c >= '0' && c <= '9':
		start := s.i
		for s.i < len(s.b) && bytes.IndexByte([]byte("+-.0123456789eEtruefalsn"), s.b[s.i]) >= 0 {
			s.i++
		}
		lit := s.b[start:s.i]
		if !json.Valid(lit) {
			return errSyntax
		}
		return nil
	}
	return errSyntax
}
