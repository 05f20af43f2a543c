// Package jsonscan reads chosen fields out of JSON text in one pass,
// skipping everything else, without encoding/json's reflection or its
// separate validation pass. It is for hot paths that need a few fields of
// a large document (an audit leaf's patients, a resource's security
// labels). It accepts exactly the JSON that encoding/json accepts (held to
// that by a fuzzer), and decodes strings as encoding/json does.
package jsonscan

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"unicode/utf8"
)

// ErrSyntax: the text is not well-formed JSON where it was read.
var ErrSyntax = errors.New("jsonscan: not JSON")

// Scanner walks JSON text. Its methods read one value at the current
// position (after whitespace) and return ErrSyntax on anything that is not
// well-formed there. The zero value is not usable: use New.
type Scanner struct {
	b     []byte
	i     int
	depth int
}

// New returns a Scanner at the start of b.
func New(b []byte) *Scanner { return &Scanner{b: b} }

// End reports whether only whitespace is left.
func (s *Scanner) End() bool { return s.ws() == len(s.b) }

// maxDepth bounds nesting, as encoding/json does (10,000), so that
// hostile input cannot exhaust the stack.
const maxDepth = 10000

// ws skips whitespace and returns the position.
func (s *Scanner) ws() int {
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return s.i // compact JSON: no whitespace between tokens
	}
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

// Next returns the first byte of the next value (after whitespace),
// without reading it, or 0 at the end of the text.
func (s *Scanner) Next() byte {
	if s.ws() >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// Object reads an object, calling fn with each key; fn must read the
// value. A value of another type is skipped without calling fn.
func (s *Scanner) Object(fn func(key []byte) error) error {
	if s.Next() != '{' {
		return s.Skip()
	}
	if s.depth++; s.depth > maxDepth {
		return ErrSyntax
	}
	defer func() { s.depth-- }()
	s.i++
	if s.Next() == '}' {
		s.i++
		return nil
	}
	for {
		k, err := s.Str()
		if err != nil {
			return err
		}
		if s.Next() != ':' {
			return ErrSyntax
		}
		s.i++
		if err := fn(k); err != nil {
			return err
		}
		switch s.Next() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return ErrSyntax
		}
	}
}

// Array reads an array, calling fn to read each element. A value of
// another type is skipped without calling fn.
func (s *Scanner) Array(fn func() error) error {
	if s.Next() != '[' {
		return s.Skip()
	}
	if s.depth++; s.depth > maxDepth {
		return ErrSyntax
	}
	defer func() { s.depth-- }()
	s.i++
	if s.Next() == ']' {
		s.i++
		return nil
	}
	for {
		if err := fn(); err != nil {
			return err
		}
		switch s.Next() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return ErrSyntax
		}
	}
}

// Str reads a string and returns its value, unescaped; the value may
// share memory with the text. Any other value is ErrSyntax.
func (s *Scanner) Str() ([]byte, error) {
	if s.Next() != '"' {
		return nil, ErrSyntax
	}
	start := s.i
	s.i++
	escaped, high := false, false
	for {
		s.i = plainRun(s.b, s.i)
		if s.i >= len(s.b) {
			return nil, ErrSyntax
		}
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
				return nil, ErrSyntax
			}
			return []byte(v), nil
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			return nil, ErrSyntax
		default: // the first byte of a multi-byte sequence, or a stray one
			high = true
			s.i++
		}
	}
}

// StrOrSkip reads a string's value, or skips a value of another type
// and returns nil.
func (s *Scanner) StrOrSkip() ([]byte, error) {
	if s.Next() != '"' {
		return nil, s.Skip()
	}
	return s.Str()
}

// Skip reads any value.
func (s *Scanner) Skip() error {
	switch c := s.Next(); {
	case c == '"':
		return s.skipStr()
	case c == '{':
		return s.Object(func([]byte) error { return s.Skip() })
	case c == '[':
		return s.Array(s.Skip)
	case c == 't' || c == 'f' || c == 'n' || c == '-' || c >= '0' && c <= '9':
		start := s.i
		for s.i < len(s.b) && bytes.IndexByte([]byte("+-.0123456789eEtruefalsn"), s.b[s.i]) >= 0 {
			s.i++
		}
		lit := s.b[start:s.i]
		if !json.Valid(lit) {
			return ErrSyntax
		}
		return nil
	}
	return ErrSyntax
}

// Null reads the literal null; any other value is ErrSyntax.
func (s *Scanner) Null() error {
	if s.Next() != 'n' || !bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		return ErrSyntax
	}
	s.i += 4
	return nil
}

// skipStr reads a string without decoding it: its escapes are checked as
// encoding/json checks them, and bytes are taken as they are (invalid
// UTF-8 included, which encoding/json accepts too).
func (s *Scanner) skipStr() error {
	s.i++ // the opening quote
	for {
		s.i = plainRun(s.b, s.i)
		if s.i >= len(s.b) {
			return ErrSyntax
		}
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return nil
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return ErrSyntax
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return ErrSyntax
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return ErrSyntax
					}
				}
				s.i += 6
			default:
				return ErrSyntax
			}
		case c < 0x20:
			return ErrSyntax
		default:
			s.i++
		}
	}
}

// plain marks the bytes a string holds as they stand: printable ASCII
// other than the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainRun returns the position of the first byte at or after i that is
// not plain, or len(b). It tests eight bytes at a time while it can.
func plainRun(b []byte, i int) int {
	for i+8 <= len(b) {
		if m := notPlain8(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// notPlain8 sets the high bit of the lowest byte of x (little-endian)
// that is not plain; the bits above it are meaningless, and it is zero
// when all eight bytes are plain. A byte below 0x20 borrows in x-0x20..,
// a quote or a backslash in (x^c)-0x01..; a byte of 0x80 or more has its
// high bit set, as has each byte that the subtractions turn into 0x80 or
// more without a borrow. No borrow starts at a plain byte, so none
// reaches below the first byte that is not plain.
func notPlain8(x uint64) uint64 {
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return ((x - ones*0x20) | (q - ones) | (bs - ones) | x) & highs
}

// Raw reads the next value and returns its text as it stands (sharing
// memory with the text).
func (s *Scanner) Raw() ([]byte, error) {
	start := s.ws()
	if err := s.Skip(); err != nil {
		return nil, err
	}
	return s.b[start:s.i], nil
}
