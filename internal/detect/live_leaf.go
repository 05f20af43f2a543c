package detect

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/phivault/phivault/internal/jsonscan"
)

// decodeLeaf fills x from an audit leaf as json.Unmarshal would (keys
// matched without regard to case, null leaving a value as it was, arrays
// decoded into the slice's existing elements), reading only the members
// leafJSON has and skipping the rest without decoding them. The detector
// reads every leaf once, so this is on the path of every audited request.
// FuzzDecodeLeaf holds it to json.Unmarshal.
func decodeLeaf(leaf []byte, x *leafJSON) error {
	s := jsonscan.New(leaf)
	err := members(s, func(k []byte) error {
		switch {
		case fold(k, "resourceType"):
			return str(s, &x.ResourceType)
		case fold(k, "recorded"):
			return str(s, &x.Recorded)
		case fold(k, "outcome"):
			return str(s, &x.Outcome)
		case fold(k, "outcomeDesc"):
			return str(s, &x.OutcomeDesc)
		case fold(k, "subtype"):
			return elems(s, &x.Subtype, func(e *leafSubtype) error {
				return members(s, func(k []byte) error { return field(s, k, "code", &e.Code) })
			})
		case fold(k, "agent"):
			return elems(s, &x.Agent, func(a *leafAgent) error { return decodeAgent(s, a) })
		case fold(k, "entity"):
			return elems(s, &x.Entity, func(e *leafEntity) error {
				return members(s, func(k []byte) error {
					switch {
					case fold(k, "what"):
						return members(s, func(k []byte) error { return field(s, k, "reference", &e.What.Reference) })
					case fold(k, "type"):
						return members(s, func(k []byte) error { return field(s, k, "code", &e.Type.Code) })
					}
					return s.Skip()
				})
			})
		case fold(k, "extension"):
			return elems(s, &x.Extension, func(e *leafExtension) error {
				return members(s, func(k []byte) error {
					switch {
					case fold(k, "url"):
						return str(s, &e.URL)
					case fold(k, "valueCode"):
						return str(s, &e.ValueCode)
					case fold(k, "valueString"):
						return str(s, &e.ValueString)
					case fold(k, "valueBoolean"):
						return boolean(s, &e.ValueBoolean)
					}
					return s.Skip()
				})
			})
		}
		return s.Skip()
	})
	if err == nil && !s.End() {
		err = jsonscan.ErrSyntax
	}
	return err
}

func decodeAgent(s *jsonscan.Scanner, a *leafAgent) error {
	return members(s, func(k []byte) error {
		switch {
		case fold(k, "requestor"):
			return boolean(s, &a.Requestor)
		case fold(k, "who"):
			return members(s, func(k []byte) error {
				if !fold(k, "identifier") {
					return s.Skip()
				}
				return members(s, func(k []byte) error {
					if fold(k, "system") {
						return str(s, &a.Who.Identifier.System)
					}
					return field(s, k, "value", &a.Who.Identifier.Value)
				})
			})
		case fold(k, "network"):
			return members(s, func(k []byte) error { return field(s, k, "address", &a.Network.Address) })
		}
		return s.Skip()
	})
}

// errLeafType: a member holds a JSON type other than leafJSON's.
var errLeafType = errors.New("detect: an audit leaf member has the wrong JSON type")

// members reads an object, calling fn with each key (fn reads the value;
// the key is only valid during the call);
// null reads nothing.
func members(s *jsonscan.Scanner, fn func(key []byte) error) error {
	switch s.Next() {
	case 'n':
		return s.Null()
	case '{':
		return s.Object(fn)
	}
	return errLeafType
}

// fold reports whether key matches name as encoding/json matches a key
// to a field: without regard to case (Unicode simple folding).
func fold(key []byte, name string) bool {
	if len(key) != len(name) {
		for _, c := range key {
			if c >= utf8.RuneSelf { // K (Kelvin sign) folds to k in fewer bytes
				return strings.EqualFold(string(key), name)
			}
		}
		return false
	}
	for i, c := range key {
		if c >= utf8.RuneSelf {
			return strings.EqualFold(string(key), name)
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		n := name[i]
		if 'A' <= n && n <= 'Z' {
			n += 'a' - 'A'
		}
		if c != n {
			return false
		}
	}
	return true
}

// field reads a string into p when key is name, and skips it otherwise.
func field(s *jsonscan.Scanner, key []byte, name string, p *string) error {
	if fold(key, name) {
		return str(s, p)
	}
	return s.Skip()
}

func str(s *jsonscan.Scanner, p *string) error {
	switch s.Next() {
	case 'n':
		return s.Null()
	case '"':
		v, err := s.Str()
		*p = string(v)
		return err
	}
	return errLeafType
}

func boolean(s *jsonscan.Scanner, p *bool) error {
	switch s.Next() {
	case 'n':
		return s.Null()
	case 't', 'f':
		v, err := s.Raw()
		*p = string(v) == "true"
		return err
	}
	return errLeafType
}

// elems reads an array into *p as encoding/json does: null sets nil, and
// each element decodes into the slice's existing element at its position
// when there is one (not zeroed), or a new zero one.
func elems[T any](s *jsonscan.Scanner, p *[]T, elem func(*T) error) error {
	switch s.Next() {
	case 'n':
		*p = nil
		return s.Null()
	case '[':
	default:
		return errLeafType
	}
	v := (*p)[:0]
	err := s.Array(func() error {
		if len(v) < cap(v) {
			v = v[:len(v)+1]
		} else {
			var zero T
			v = append(v, zero)
		}
		return elem(&v[len(v)-1])
	})
	*p = v
	return err
}
