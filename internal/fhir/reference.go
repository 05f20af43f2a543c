package fhir

import (
	"net/url"
	"strings"
)

// checkReference checks the syntax of Reference.reference and returns a message, or "" when it
// is well formed. Accepted forms: a local reference "#id" (or "#" for the container), a
// relative reference "Type/id" or "Type/id/_history/vid" to a known resource type, a
// conditional reference "Type?query" (meaningful in transactions), "urn:uuid:" and
// "urn:oid:" URNs, and absolute http(s) URLs.
func checkReference(s string) string {
	sp := loadSpec()
	switch {
	case s[0] == '#':
		if len(s) > 1 && !IsID(s[1:]) {
			return "invalid local reference: expected '#' and an id"
		}
		return ""
	case strings.HasPrefix(s, "urn:uuid:"):
		if !sp.types["uuid"].re.MatchString(s) {
			return "invalid reference: expected urn:uuid: and a lowercase UUID"
		}
		return ""
	case strings.HasPrefix(s, "urn:oid:"):
		if !sp.types["oid"].re.MatchString(s) {
			return "invalid reference: expected urn:oid: and a dotted OID"
		}
		return ""
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || strings.ContainsAny(s, " \t\r\n") {
			return "invalid reference: malformed absolute URL"
		}
		return ""
	}
	if typ, query, ok := strings.Cut(s, "?"); ok {
		if !IsResourceType(typ) || query == "" {
			return "invalid conditional reference: expected Type?search"
		}
		return ""
	}
	parts := strings.Split(s, "/")
	switch {
	case len(parts) == 2 || len(parts) == 4 && parts[2] == "_history" && IsID(parts[3]):
	default:
		return "invalid reference: expected Type/id, #id, an absolute URL or a URN"
	}
	if !IsResourceType(parts[0]) {
		return "invalid reference: unknown resource type"
	}
	if !IsID(parts[1]) {
		return "invalid reference: malformed id"
	}
	return ""
}
