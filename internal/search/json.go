package search

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/phivault/phivault/internal/jsonscan"
)

func parseJSON(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	err := dec.Decode(&m)
	return m, err
}

// parseMembers decodes the members of the JSON object b that keep accepts
// (by key), as parseJSON would, and skips the others without decoding
// them. The whole text must still be well-formed.
func parseMembers(b []byte, keep func(key string) bool) (map[string]any, error) {
	s := jsonscan.New(b)
	if s.Next() != '{' {
		return nil, errors.New("search: a resource body is not a JSON object")
	}
	m := map[string]any{}
	err := s.Object(func(k []byte) error {
		if !keep(string(k)) {
			return s.Skip()
		}
		if s.Next() == '"' { // most chosen members are strings (dates)
			v, err := s.Str()
			m[string(k)] = string(v)
			return err
		}
		raw, err := s.Raw()
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		m[string(k)] = v
		return nil
	})
	if err == nil && !s.End() {
		err = jsonscan.ErrSyntax
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}
