package audit

import (
	"bytes"

	"github.com/phivault/phivault/internal/jsonscan"
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
	s := jsonscan.New(leaf)
	var recorded []byte
	if s.Next() != '{' {
		return leafTerms{}, false
	}
	err := s.Object(func(key []byte) error {
		switch string(key) {
		case "recorded":
			v, err := s.StrOrSkip()
			recorded = v
			return err
		case "agent":
			t.agent = ""
			found := false
			return s.Array(func() error {
				var sys, val []byte
				err := s.Object(func(k []byte) error {
					if string(k) != "who" {
						return s.Skip()
					}
					return s.Object(func(k []byte) error {
						if string(k) != "identifier" {
							return s.Skip()
						}
						return s.Object(func(k []byte) (err error) {
							switch string(k) {
							case "system":
								sys, err = s.StrOrSkip()
							case "value":
								val, err = s.StrOrSkip()
							default:
								err = s.Skip()
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
			return s.Array(func() error {
				var ref, typ, role []byte
				err := s.Object(func(k []byte) error {
					var dst *[]byte
					switch string(k) {
					case "what":
						dst = &ref
					case "type":
						dst = &typ
					case "role":
						dst = &role
					default:
						return s.Skip()
					}
					want := "code"
					if dst == &ref {
						want = "reference"
					}
					return s.Object(func(k []byte) (err error) {
						if string(k) != want {
							return s.Skip()
						}
						*dst, err = s.StrOrSkip()
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
		return s.Skip()
	})
	if err != nil || !s.End() {
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
