package fhirpath

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// tokKind classifies a lexical token.
type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tDelimIdent // `quoted identifier`
	tString     // 'string'
	tNumber     // 12, 1.5, 3L
	tDate       // @2014-01-25T14:30
	tTime       // @T14:30
	tExternal   // %name
	tSpecial    // $this, $index, $total
	tOp         // punctuation and symbolic operators
)

type token struct {
	kind tokKind
	text string // unescaped value for strings and delimited identifiers
	pos  int
}

// lex splits an expression into tokens. Comments are dropped.
func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("fhirpath: unterminated comment at %d", i)
			}
			i += end + 4
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{tIdent, src[i:j], i})
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			if j+1 < len(src) && src[j] == '.' && isDigit(src[j+1]) {
				j++
				for j < len(src) && isDigit(src[j]) {
					j++
				}
			} else if j < len(src) && src[j] == 'L' {
				j++
			}
			toks = append(toks, token{tNumber, src[i:j], i})
			i = j
		case c == '\'' || c == '`':
			s, n, err := lexQuoted(src[i:], c)
			if err != nil {
				return nil, fmt.Errorf("fhirpath: at %d: %w", i, err)
			}
			k := tString
			if c == '`' {
				k = tDelimIdent
			}
			toks = append(toks, token{k, s, i})
			i += n
		case c == '@':
			j := i + 1
			k := tDate
			if j < len(src) && src[j] == 'T' {
				k = tTime
			}
			for j < len(src) && isDateChar(src[j]) && (src[j] != '.' || j+1 < len(src) && isDigit(src[j+1])) {
				j++
			}
			toks = append(toks, token{k, src[i+1 : j], i})
			i = j
		case c == '%':
			if i+1 < len(src) && (src[i+1] == '`' || src[i+1] == '\'') {
				s, n, err := lexQuoted(src[i+1:], src[i+1])
				if err != nil {
					return nil, fmt.Errorf("fhirpath: at %d: %w", i, err)
				}
				toks = append(toks, token{tExternal, s, i})
				i += n + 1
				continue
			}
			j := i + 1
			for j < len(src) && (isIdentPart(src[j]) || src[j] == '-') {
				j++
			}
			if j == i+1 {
				return nil, fmt.Errorf("fhirpath: empty external constant at %d", i)
			}
			toks = append(toks, token{tExternal, src[i+1 : j], i})
			i = j
		case c == '$':
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{tSpecial, src[i:j], i})
			i = j
		default:
			op := ""
			for _, o := range []string{"<=", ">=", "!=", "!~", "=", "~", "<", ">", "(", ")", "[", "]", "{", "}", ".", ",", "|", "+", "-", "*", "/", "&"} {
				if strings.HasPrefix(src[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				r, _ := utf8.DecodeRuneInString(src[i:])
				return nil, fmt.Errorf("fhirpath: unexpected character %q at %d", r, i)
			}
			toks = append(toks, token{tOp, op, i})
			i += len(op)
		}
	}
	return append(toks, token{tEOF, "", len(src)}), nil
}

// lexQuoted reads a quoted string starting at s[0] == q and returns its
// unescaped value and the number of bytes consumed.
func lexQuoted(s string, q byte) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c == q {
			return b.String(), i + 1, nil
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) {
			break
		}
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+4 >= len(s) {
				return "", 0, fmt.Errorf("bad unicode escape")
			}
			var r rune
			if _, err := fmt.Sscanf(s[i+1:i+5], "%04x", &r); err != nil {
				return "", 0, fmt.Errorf("bad unicode escape")
			}
			b.WriteRune(r)
			i += 4
		default: // \\ \' \" \` \/ and anything else stand for themselves
			b.WriteByte(s[i])
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) }
func isDigit(c byte) bool     { return c >= '0' && c <= '9' }
func isDateChar(c byte) bool {
	return isDigit(c) || c == '-' || c == ':' || c == 'T' || c == '.' || c == '+' || c == 'Z'
}
