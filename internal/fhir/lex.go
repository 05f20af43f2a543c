package fhir

import (
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// Scalar lexing for the parser in parse.go: numbers, strings and object keys.

func (p *parser) number() (json.Number, error) {
	d, start := p.data, p.pos
	i := start
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return "", p.fail(CodeStructure, "invalid number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			p.pos = i
			return "", p.fail(CodeStructure, "invalid number")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			p.pos = i
			return "", p.fail(CodeStructure, "invalid number")
		}
	}
	p.pos = i
	return json.Number(d[start:i]), nil
}

// key parses an object key, interning well-known element names.
func (p *parser) key() (string, error) {
	start := p.pos + 1
	for i := start; i < len(p.data); i++ {
		c := p.data[i]
		if c == '"' {
			p.pos = i + 1
			if s, ok := p.names[string(p.data[start:i])]; ok {
				return s, nil
			}
			return string(p.data[start:i]), nil
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
	}
	return p.str()
}

// str parses a JSON string, rejecting invalid UTF-8, raw control characters, bad escapes and
// unpaired surrogates.
func (p *parser) str() (string, error) {
	d := p.data
	i := p.pos + 1
	start := i
	// Fast path: no escapes.
	for i < len(d) {
		c := d[i]
		if c == '"' {
			p.pos = i + 1
			return string(d[start:i]), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			p.pos = i
			return "", p.fail(CodeStructure, "invalid string: control character")
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(d[i:])
		if r == utf8.RuneError && n <= 1 {
			p.pos = i
			return "", p.fail(CodeStructure, "invalid string: not UTF-8")
		}
		i += n
	}
	buf := make([]byte, 0, i-start+16)
	buf = append(buf, d[start:i]...)
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return string(buf), nil
		case c == '\\':
			if i+1 >= len(d) {
				p.pos = i
				return "", p.fail(CodeStructure, "invalid string: bad escape")
			}
			i++
			switch d[i] {
			case '"', '\\', '/':
				buf = append(buf, d[i])
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := hex4(d, i+1)
				if !ok {
					p.pos = i
					return "", p.fail(CodeStructure, "invalid string: bad escape")
				}
				i += 4
				if utf16.IsSurrogate(r) {
					r2, ok := rune(0), false
					if i+2 < len(d) && d[i+1] == '\\' && d[i+2] == 'u' {
						r2, ok = hex4(d, i+3)
					}
					dec := utf16.DecodeRune(r, r2)
					if !ok || dec == utf8.RuneError {
						p.pos = i
						return "", p.fail(CodeStructure, "invalid string: unpaired surrogate")
					}
					i += 6
					r = dec
				}
				buf = utf8.AppendRune(buf, r)
			default:
				p.pos = i
				return "", p.fail(CodeStructure, "invalid string: bad escape")
			}
			i++
		case c < 0x20:
			p.pos = i
			return "", p.fail(CodeStructure, "invalid string: control character")
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, n := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && n <= 1 {
				p.pos = i
				return "", p.fail(CodeStructure, "invalid string: not UTF-8")
			}
			buf = append(buf, d[i:i+n]...)
			i += n
		}
	}
	p.pos = i
	return "", p.fail(CodeStructure, "unexpected end of JSON in a string")
}

func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
