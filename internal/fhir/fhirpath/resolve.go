package fhirpath

import (
	"strings"

	"github.com/phivault/phivault/internal/fhir"
)

// resolve maps each Reference (or reference string) to a stub resource
// {"resourceType": T, "id": id} typed T, so that "resolve() is Patient"
// works without I/O. Local references ("#id") resolve to the contained
// resource of %resource. A reference whose text names no type (urn:uuid:,
// logical identifiers) falls back to Reference.type; otherwise it is dropped.
func (c *evalCtx) resolve(on Collection) Collection {
	var out Collection
	for _, it := range on {
		var ref, typ string
		switch v := it.Value.(type) {
		case string:
			ref = v
		case map[string]any:
			ref, _ = v["reference"].(string)
			typ, _ = v["type"].(string)
		}
		if strings.HasPrefix(ref, "#") {
			if res, ok := c.contained(ref[1:]); ok {
				out = append(out, res)
			}
			continue
		}
		if t, id, ok := ParseReference(ref); ok {
			out = append(out, Item{Value: map[string]any{"resourceType": t, "id": id}, Type: t})
			continue
		}
		if typ != "" && isTypeName(typ) {
			out = append(out, Item{Value: map[string]any{"resourceType": typ}, Type: typ})
		}
	}
	return out
}

func (c *evalCtx) contained(id string) (Item, bool) {
	for _, r := range c.resource {
		for _, ct := range c.member(Collection{r}, "contained", false) {
			if m, ok := ct.Value.(map[string]any); ok && m["id"] == id {
				return ct, true
			}
		}
	}
	return Item{}, false
}

// ParseReference extracts the resource type and id from a literal
// reference: "Patient/123", "Patient/123/_history/2", or an absolute URL
// ending in Type/id[/_history/v]. Fragment and urn: references report false.
func ParseReference(ref string) (typ, id string, ok bool) {
	if ref == "" || strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "urn:") {
		return "", "", false
	}
	ref, _, _ = strings.Cut(ref, "#")
	ref, _, _ = strings.Cut(ref, "?")
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	if strings.Contains(ref, "|") { // canonical with version
		ref, _, _ = strings.Cut(ref, "|")
	}
	i := strings.LastIndexByte(ref, '/')
	if i <= 0 {
		return "", "", false
	}
	id = ref[i+1:]
	rest := ref[:i]
	typ = rest[strings.LastIndexByte(rest, '/')+1:]
	if !isTypeName(typ) || !fhir.IsID(id) {
		return "", "", false
	}
	return typ, id, true
}

// isTypeName reports whether s looks like a resource type name.
func isTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentPart(s[i]) {
			return false
		}
	}
	return true
}
