package fhir

import (
	"sync"
)

// Resource is a parsed FHIR resource in its JSON shape: objects are map[string]any, arrays
// []any, strings string, booleans bool, numbers json.Number (so decimal precision such as
// 1.50 survives a round trip) and JSON null is nil.
type Resource map[string]any

// Type returns the resource's resourceType, or "" when it has none.
func (r Resource) Type() string {
	s, _ := r["resourceType"].(string)
	return s
}

// MaxDepth is the deepest nesting of JSON objects and arrays that Parse accepts.
const MaxDepth = 64

// Parse strictly parses one FHIR JSON resource. It rejects invalid JSON and invalid UTF-8,
// anything after the top-level value, duplicate object keys, nesting deeper than MaxDepth, a
// top level that is not an object and a missing or non-string resourceType. It does not
// validate the resource against the spec: call Validate for that. Parse sets no limit on the
// input's size; callers bound it (http.MaxBytesReader) before reading a request body.
//
// Errors are *Error values whose text never contains input values.
func Parse(data []byte) (Resource, error) {
	p := parserPool.Get().(*parser)
	defer p.release()
	p.data, p.names = data, internTable()
	p.ws()
	if p.pos >= len(p.data) {
		return nil, p.fail(CodeStructure, "empty document")
	}
	if p.data[p.pos] != '{' {
		return nil, p.fail(CodeStructure, "a resource must be a JSON object")
	}
	v, err := p.object(1)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.pos != len(p.data) {
		return nil, &Error{Code: CodeStructure, Offset: int64(p.pos), Message: "unexpected data after the resource"}
	}
	r := Resource(v)
	rt, ok := r["resourceType"]
	if !ok {
		return nil, &Error{Code: CodeRequired, Location: "resourceType", Offset: 0, Message: "missing resourceType"}
	}
	if _, ok := rt.(string); !ok {
		return nil, &Error{Code: CodeStructure, Location: "resourceType", Offset: 0, Message: "resourceType must be a string"}
	}
	return r, nil
}

// internTable maps every element name in the spec to one shared string, so that parsing
// does not allocate a fresh string for each well-known key.
var internTable = sync.OnceValue(func() map[string]string {
	m := map[string]string{"resourceType": "resourceType"}
	for _, t := range loadSpec().types {
		for name := range t.elems {
			m[name] = name
			m["_"+name] = "_" + name
		}
	}
	return m
})

type pathSeg struct {
	key string // "" for an array index
	idx int
}

var parserPool = sync.Pool{New: func() any { return new(parser) }}

// release returns p to the pool, dropping references to the input and parsed values.
func (p *parser) release() {
	clear(p.members[:cap(p.members)])
	clear(p.items[:cap(p.items)])
	*p = parser{members: p.members[:0], items: p.items[:0], path: p.path[:0]}
	parserPool.Put(p)
}

type member struct {
	key string
	val any
}

type parser struct {
	data    []byte
	members []member // scratch stack of object members being parsed
	items   []any    // scratch stack of array items being parsed
	pos     int
	names   map[string]string
	path    []pathSeg
	rtype   string // resourceType of the top-level object, once seen
}

func (p *parser) fail(code, msg string) *Error {
	loc := p.rtype
	if loc == "" {
		loc = "$"
	}
	b := []byte(loc)
	for _, s := range p.path {
		if s.key != "" {
			b = appendName(b, s.key)
		} else {
			b = appendIndex(b, s.idx)
		}
	}
	if len(p.path) == 0 {
		b = []byte(p.rtype)
	}
	return &Error{Code: code, Location: string(b), Offset: int64(p.pos), Message: msg}
}

func (p *parser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (any, error) {
	p.ws()
	if p.pos >= len(p.data) {
		return nil, p.fail(CodeStructure, "unexpected end of JSON")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		m, err := p.object(depth + 1)
		if err != nil {
			return nil, err
		}
		return m, nil
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, p.fail(CodeStructure, "invalid JSON value")
}

func (p *parser) literal(lit string) error {
	if len(p.data)-p.pos < len(lit) || string(p.data[p.pos:p.pos+len(lit)]) != lit {
		return p.fail(CodeStructure, "invalid JSON value")
	}
	p.pos += len(lit)
	return nil
}

// object parses an object. Members are gathered on a shared scratch stack first so that each
// map is allocated once at its final size.
func (p *parser) object(depth int) (map[string]any, error) {
	if depth > MaxDepth {
		return nil, p.fail(CodeStructure, "JSON nested too deeply")
	}
	p.pos++ // '{'
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return map[string]any{}, nil
	}
	mark := len(p.members)
	defer func() { p.members = p.members[:mark] }()
	var seen map[string]struct{}
	for {
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.fail(CodeStructure, "expected a property name")
		}
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		if p.duplicate(mark, &seen, key) {
			p.path = append(p.path, pathSeg{key: key})
			return nil, p.fail(CodeStructure, "duplicate property")
		}
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.fail(CodeStructure, "expected ':' after a property name")
		}
		p.pos++
		p.path = append(p.path, pathSeg{key: key})
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.path = p.path[:len(p.path)-1]
		p.members = append(p.members, member{key, v})
		if depth == 1 && key == "resourceType" {
			if s, ok := v.(string); ok && IsResourceType(s) {
				p.rtype = s
			}
		}
		p.ws()
		if p.pos >= len(p.data) {
			return nil, p.fail(CodeStructure, "unexpected end of JSON")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			m := make(map[string]any, len(p.members)-mark)
			for _, kv := range p.members[mark:] {
				m[kv.key] = kv.val
			}
			return m, nil
		default:
			return nil, p.fail(CodeStructure, "expected ',' or '}'")
		}
	}
}

// duplicate reports whether key is already a member of the object whose members start at
// mark. Small objects are scanned; large ones get a set, so the check stays linear overall.
func (p *parser) duplicate(mark int, seen *map[string]struct{}, key string) bool {
	members := p.members[mark:]
	if len(members) < 16 {
		for _, m := range members {
			if m.key == key {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*len(members))
		for _, m := range members {
			(*seen)[m.key] = struct{}{}
		}
	}
	if _, ok := (*seen)[key]; ok {
		return true
	}
	(*seen)[key] = struct{}{}
	return false
}

func (p *parser) array(depth int) ([]any, error) {
	if depth > MaxDepth {
		return nil, p.fail(CodeStructure, "JSON nested too deeply")
	}
	p.pos++ // '['
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return []any{}, nil
	}
	mark := len(p.items)
	defer func() { p.items = p.items[:mark] }()
	for i := 0; ; i++ {
		p.path = append(p.path, pathSeg{idx: i})
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.path = p.path[:len(p.path)-1]
		p.items = append(p.items, v)
		p.ws()
		if p.pos >= len(p.data) {
			return nil, p.fail(CodeStructure, "unexpected end of JSON")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return append([]any(nil), p.items[mark:]...), nil
		default:
			return nil, p.fail(CodeStructure, "expected ',' or ']'")
		}
	}
}
