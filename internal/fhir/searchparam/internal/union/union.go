// Package union splits a SearchParameter expression that is a union across
// resource types ("A.x | B.y.where(...)") into the parts that apply to one
// base type. It is shared by the table generator and by custom parameters.
package union

import "strings"

// Split returns the top-level '|' operands of expr, trimmed. Operators
// inside parentheses, brackets and quoted strings are not split.
func Split(expr string) []string {
	var parts []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
		case c == '|' && depth == 0:
			parts = append(parts, strings.TrimSpace(expr[start:i]))
			start = i + 1
		}
	}
	return append(parts, strings.TrimSpace(expr[start:]))
}

// Root returns the first identifier of a path expression, ignoring
// leading parentheses: "(Observation.value as Quantity)" -> "Observation".
func Root(part string) string {
	s := strings.TrimLeft(part, "( ")
	end := 0
	for end < len(s) && (s[end] == '_' || s[end] >= 'a' && s[end] <= 'z' || s[end] >= 'A' && s[end] <= 'Z' || s[end] >= '0' && s[end] <= '9') {
		end++
	}
	return s[:end]
}

// ForBase keeps the union operands of expr whose root is base, Resource or
// DomainResource, rejoined with " | ". When no operand is rooted at a known
// type (e.g. "%resource.x" or a bare function call), expr is returned whole.
func ForBase(expr, base string) string {
	parts := Split(expr)
	var keep []string
	typed := false
	for _, p := range parts {
		r := Root(p)
		if r != "" && r[0] >= 'A' && r[0] <= 'Z' {
			typed = true
			if r == base || r == "Resource" || r == "DomainResource" {
				keep = append(keep, p)
			}
		}
	}
	if !typed {
		return expr
	}
	return strings.Join(keep, " | ")
}
