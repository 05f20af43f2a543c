package fhir

import (
	"encoding/xml"
	"io"
	"strings"
)

const xhtmlNS = "http://www.w3.org/1999/xhtml"

// forbiddenXHTML lists elements that R4 narrative may not contain (Narrative.div rules and
// the txt-1 invariant): scripts, forms, frames, objects and document structure.
var forbiddenXHTML = map[string]bool{
	"script": true, "style": true, "form": true, "input": true, "button": true, "select": true,
	"textarea": true, "iframe": true, "frame": true, "frameset": true, "object": true,
	"embed": true, "applet": true, "base": true, "link": true, "meta": true, "head": true,
	"body": true, "html": true,
}

// checkXHTML checks a Narrative.div value: well-formed XML whose root is an XHTML div, with no
// forbidden elements and no event-handler attributes (txt-1, txt-2).
func checkXHTML(s string) (code, msg string) {
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return CodeValue, "invalid xhtml: not well-formed XML"
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			if depth == 0 && (roots > 1 || t.Name.Local != "div" || t.Name.Space != xhtmlNS) {
				return CodeValue, "invalid xhtml: the root must be a div in the XHTML namespace"
			}
			if depth > MaxDepth {
				return CodeValue, "invalid xhtml: nested too deeply"
			}
			if forbiddenXHTML[strings.ToLower(t.Name.Local)] {
				return CodeValue, "invalid xhtml: element not allowed in narrative"
			}
			for _, a := range t.Attr {
				if strings.HasPrefix(strings.ToLower(a.Name.Local), "on") {
					return CodeValue, "invalid xhtml: event handler attributes are not allowed"
				}
				if v := strings.ToLower(strings.TrimSpace(a.Value)); strings.HasPrefix(v, "javascript:") {
					return CodeValue, "invalid xhtml: script URLs are not allowed"
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.Directive:
			return CodeValue, "invalid xhtml: directives are not allowed"
		case xml.CharData:
			if depth == 0 && strings.TrimSpace(string(t)) != "" {
				return CodeValue, "invalid xhtml: text outside the div"
			}
		}
	}
	if roots == 0 {
		return CodeValue, "invalid xhtml: the root must be a div in the XHTML namespace"
	}
	return "", ""
}
