package fhir

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// maxString is the R4 limit on the length of string and markdown values, in characters.
const maxString = 1 << 20

// formatHint describes each primitive's lexical form for messages (never the value itself).
var formatHint = map[string]string{
	"date":         "YYYY, YYYY-MM or YYYY-MM-DD",
	"dateTime":     "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a time zone",
	"instant":      "YYYY-MM-DDThh:mm:ss(.sss) with a time zone",
	"time":         "hh:mm:ss",
	"id":           "1 to 64 of A-Z, a-z, 0-9, '-' and '.'",
	"oid":          "urn:oid: followed by a dotted OID",
	"uuid":         "urn:uuid: followed by a lowercase UUID",
	"code":         "no leading, trailing or repeated whitespace",
	"uri":          "no whitespace",
	"url":          "no whitespace",
	"canonical":    "no whitespace",
	"base64Binary": "base64",
	"integer":      "a whole number",
	"unsignedInt":  "a whole number of at least 0",
	"positiveInt":  "a whole number of at least 1",
}

// checkPrimitive checks one primitive value against its type's JSON representation and
// lexical rules. It returns an issue code and message, or "" when the value is valid.
func checkPrimitive(t *typeDef, val any) (code, msg string) {
	switch t.name {
	case "boolean":
		if _, ok := val.(bool); !ok {
			return CodeStructure, "expected a JSON boolean"
		}
		return "", ""
	case "integer", "unsignedInt", "positiveInt":
		s, ok := numberText(val)
		if !ok {
			return CodeStructure, "expected a JSON number (" + t.name + ")"
		}
		if !t.re.MatchString(s) {
			return CodeValue, "invalid " + t.name + ": expected " + formatHint[t.name]
		}
		if _, err := strconv.ParseInt(s, 10, 32); err != nil {
			return CodeValue, "invalid " + t.name + ": out of the 32-bit range"
		}
		return "", ""
	case "decimal":
		s, ok := numberText(val)
		if !ok {
			return CodeStructure, "expected a JSON number (decimal)"
		}
		if !t.re.MatchString(s) {
			return CodeValue, "invalid decimal"
		}
		return "", ""
	}
	s, ok := val.(string)
	if !ok {
		return CodeStructure, "expected a JSON string (" + t.name + ")"
	}
	if s == "" {
		return CodeValue, "empty strings are not allowed (" + t.name + ")"
	}
	switch t.name {
	case "string", "markdown":
		// The R4 pattern [ \r\n\t\S]+ plus the rules that strings hold no control characters
		// other than tab, carriage return and line feed, and at most 1 MiB characters.
		if len(s) > maxString && utf8.RuneCountInString(s) > maxString {
			return CodeValue, "invalid " + t.name + ": longer than 1 MiB characters"
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 && c != '\t' && c != '\r' && c != '\n' {
				return CodeValue, "invalid " + t.name + ": control characters are not allowed"
			}
		}
		return "", ""
	case "uri", "url", "canonical":
		for i := 0; i < len(s); i++ {
			if c := s[i]; isSpace(c) {
				return CodeValue, "invalid " + t.name + ": expected " + formatHint[t.name]
			}
		}
		return "", ""
	case "xhtml":
		return checkXHTML(s)
	case "code":
		if !isCode(s) {
			return CodeValue, "invalid code: expected " + formatHint["code"]
		}
		return "", ""
	case "id":
		if !IsID(s) {
			return CodeValue, "invalid id: expected " + formatHint["id"]
		}
		return "", ""
	}
	if t.re != nil && !t.re.MatchString(s) {
		if h := formatHint[t.name]; h != "" {
			return CodeValue, "invalid " + t.name + ": expected " + h
		}
		return CodeValue, "invalid " + t.name
	}
	switch t.name {
	case "date", "dateTime", "instant":
		if !validDay(s) {
			return CodeValue, "invalid " + t.name + ": no such day"
		}
	}
	return "", ""
}

// numberText returns the JSON text of a number: json.Number from Parse, or a Go number from a
// hand-built Resource.
func numberText(val any) (string, bool) {
	switch n := val.(type) {
	case json.Number:
		return string(n), true
	case float64:
		if math.IsInf(n, 0) || math.IsNaN(n) {
			return "", false
		}
		return strconv.FormatFloat(n, 'f', -1, 64), true
	case int:
		return strconv.Itoa(n), true
	case int64:
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

// validDay checks the day of month of a value already matching the date pattern.
func validDay(s string) bool {
	if len(s) < 10 {
		return true
	}
	y, _ := strconv.Atoi(s[0:4])
	m, _ := strconv.Atoi(s[5:7])
	d, _ := strconv.Atoi(s[8:10])
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[m-1]
	if m == 2 && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		days = 29
	}
	return d <= days
}

// isSpace is the \s class of the R4 patterns (RE2 syntax): tab, line feed, form feed,
// carriage return and space.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// isCode is the R4 code pattern [^\s]+(\s[^\s]+)*, without the regexp engine: the most
// common primitive after string. TestFastPatterns checks it against the pattern.
func isCode(s string) bool {
	if s == "" || isSpace(s[0]) || isSpace(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if isSpace(s[i]) && isSpace(s[i-1]) {
			return false
		}
	}
	return true
}

// IsID reports whether s is an R4 id: [A-Za-z0-9\-\.]{1,64}.
func IsID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
