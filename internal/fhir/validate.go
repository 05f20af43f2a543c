package fhir

import (
	"strconv"
	"strings"
)

// maxValidateDepth bounds recursion for hand-built resources (Parse already limits nesting).
const maxValidateDepth = 2 * MaxDepth

// Validate checks r against the FHIR R4 base definitions and returns every issue found,
// sorted by location; nil means r is valid. It checks element names, JSON shapes, cardinality,
// primitive formats, primitive extensions, extensions, contained and nested resources,
// required value-set bindings (where the value set could be expanded when the spec table was
// generated) and Reference.reference syntax. It does not evaluate FHIRPath invariants other
// than ext-1, nor profiles, nor whether references resolve. Validate does not modify r and is
// safe for concurrent use.
//
// r must have the shapes Parse produces (map[string]any or Resource objects, []any arrays,
// string, bool, json.Number or Go numbers); any other Go type is reported as a wrong JSON
// shape, never a panic.
func Validate(r Resource) []Issue {
	v := validator{spec: loadSpec()}
	v.resource(map[string]any(r), make([]byte, 0, 128), false)
	sortIssues(v.issues)
	return v.issues
}

type validator struct {
	spec   *spec
	issues []Issue
	depth  int
}

func (v *validator) add(code string, loc []byte, msg string) {
	v.issues = append(v.issues, Issue{Severity: SeverityError, Code: code, Location: string(loc), Message: msg})
}

// resource validates obj as the resource its resourceType names. loc is empty at the top level;
// contained is set for the items of DomainResource.contained.
func (v *validator) resource(obj map[string]any, loc []byte, contained bool) {
	rt, ok := obj["resourceType"]
	if !ok {
		if len(loc) == 0 {
			loc = append(loc, "Resource"...)
		}
		v.add(CodeRequired, append(loc, ".resourceType"...), "missing resourceType")
		return
	}
	name, ok := rt.(string)
	t := v.spec.types[name]
	if !ok || t == nil || t.kind != kindResource || t.abstract {
		if len(loc) == 0 {
			loc = append(loc, "Resource"...)
		}
		v.add(CodeStructure, append(loc, ".resourceType"...), "unknown resource type")
		return
	}
	if len(loc) == 0 {
		loc = append(loc, name...)
	}
	v.object(obj, t, loc)
	if contained {
		v.checkContained(obj, loc)
	}
}

// checkContained enforces the DomainResource invariants on a contained resource: dom-2 (no
// nested contained resources), dom-4 (no meta.versionId or meta.lastUpdated) and dom-5 (no
// security labels).
func (v *validator) checkContained(obj map[string]any, loc []byte) {
	if _, ok := obj["contained"]; ok {
		v.add(CodeInvalid, appendName(loc, "contained"), "a contained resource must not contain resources (dom-2)")
	}
	meta, _ := asObject(obj["meta"])
	for _, k := range []string{"versionId", "lastUpdated"} {
		if _, ok := meta[k]; ok {
			v.add(CodeInvalid, appendName(appendName(loc, "meta"), k), "a contained resource must not have a version id or last-updated time (dom-4)")
		}
	}
	if _, ok := meta["security"]; ok {
		v.add(CodeInvalid, appendName(appendName(loc, "meta"), "security"), "a contained resource must not have security labels (dom-5)")
	}
}

// object validates the properties of obj, a value of type t at loc.
func (v *validator) object(obj map[string]any, t *typeDef, loc []byte) {
	v.depth++
	defer func() { v.depth-- }()
	if v.depth > maxValidateDepth {
		v.add(CodeStructure, loc, "nested too deeply")
		return
	}
	for key, val := range obj {
		if key == "resourceType" && t.kind == kindResource {
			continue
		}
		name, isExt := key, false
		if len(key) > 1 && key[0] == '_' {
			name, isExt = key[1:], true
		}
		e := t.elems[name]
		if e == nil || (isExt && e.typ.kind != kindPrimitive) {
			v.add(CodeStructure, appendName(loc, key), "unknown element")
			continue
		}
		if isExt {
			if _, has := obj[name]; !has {
				v.element(e, nil, false, val, true, loc)
			}
			continue
		}
		var extVal any
		hasExt := false
		if e.typ.kind == kindPrimitive {
			extVal, hasExt = obj[e.ext]
		}
		v.element(e, val, true, extVal, hasExt, loc)
		if e.choice != nil {
			v.checkChoice(obj, e, loc)
		}
	}
	for _, g := range t.required {
		if !present(obj, g.names) {
			name := g.path[strings.LastIndexByte(g.path, '.')+1:]
			v.add(CodeRequired, append(append(loc, '.'), name...), "missing required element (minimum cardinality "+strconv.Itoa(g.min)+")")
		}
	}
	switch t.name {
	case "Extension":
		v.checkExtension(obj, t, loc)
	case "Reference":
		if s, ok := obj["reference"].(string); ok && s != "" {
			if msg := checkReference(s); msg != "" {
				v.add(CodeValue, appendName(loc, "reference"), msg)
			}
		}
	}
}

func present(obj map[string]any, names []string) bool {
	for _, n := range names {
		if _, ok := obj[n]; ok {
			return true
		}
		if _, ok := obj["_"+n]; ok {
			return true
		}
	}
	return false
}

// checkChoice reports a choice element given as more than one type. It reports once, from the
// first present variant in definition order.
func (v *validator) checkChoice(obj map[string]any, e *elemDef, loc []byte) {
	first := ""
	n := 0
	for _, name := range e.choice {
		if _, ok := obj[name]; ok {
			if first == "" {
				first = name
			}
			n++
		}
	}
	if n > 1 && first == e.name {
		v.add(CodeStructure, appendName(loc, e.name), "only one type of the choice element "+e.choiceName+" may be present")
	}
}

// checkExtension enforces ext-1: an extension has either nested extensions or a value.
func (v *validator) checkExtension(obj map[string]any, t *typeDef, loc []byte) {
	_, hasExt := obj["extension"]
	hasValue := false
	for key := range obj {
		if e := t.elems[strings.TrimPrefix(key, "_")]; e != nil && e.choice != nil {
			hasValue = true
			break
		}
	}
	if hasExt == hasValue {
		v.add(CodeInvalid, loc, "an extension must have either a value or nested extensions, not both or neither (ext-1)")
	}
}

// element validates one property (val, and for primitives its "_name" sibling extVal).
func (v *validator) element(e *elemDef, val any, hasVal bool, extVal any, hasExt bool, parent []byte) {
	loc := appendName(parent, e.name)
	if e.max == 1 {
		if _, isArr := val.([]any); isArr && hasVal {
			v.add(CodeStructure, loc, "expected a single value, not an array")
			return
		}
		if _, isArr := extVal.([]any); isArr && hasExt {
			v.add(CodeStructure, loc, "expected a single primitive extension object, not an array")
			return
		}
		v.value(e, val, hasVal, extVal, hasExt, loc)
		return
	}
	var arr, extArr []any
	if hasVal {
		a, ok := val.([]any)
		if !ok {
			v.add(CodeStructure, loc, "expected an array")
			return
		}
		if len(a) == 0 {
			v.add(CodeStructure, loc, "empty arrays are not allowed")
			return
		}
		arr = a
	}
	if hasExt {
		a, ok := extVal.([]any)
		if !ok {
			v.add(CodeStructure, loc, "expected an array of primitive extension objects")
			return
		}
		if len(a) == 0 {
			v.add(CodeStructure, loc, "empty arrays are not allowed")
			return
		}
		if hasVal && len(a) != len(arr) {
			v.add(CodeStructure, loc, "primitive extension array must have the same length as the value array")
			return
		}
		extArr = a
	}
	n := max(len(arr), len(extArr))
	if e.max > 0 && n > e.max {
		v.add(CodeInvalid, loc, "too many repetitions (maximum cardinality "+strconv.Itoa(e.max)+")")
	}
	for i := range n {
		var item, extItem any
		if i < len(arr) {
			item = arr[i]
		}
		if i < len(extArr) {
			extItem = extArr[i]
		}
		v.value(e, item, item != nil, extItem, extItem != nil, appendIndex(loc, i))
	}
}

// value validates one occurrence of e at loc.
func (v *validator) value(e *elemDef, val any, hasVal bool, extVal any, hasExt bool, loc []byte) {
	t := e.typ
	if t.kind == kindPrimitive {
		switch {
		case hasVal && val != nil:
			if code, msg := checkPrimitive(t, val); msg != "" {
				v.add(code, loc, msg)
			} else if e.vs != nil {
				if s, ok := val.(string); ok && !e.vs.codes[s] {
					v.add(CodeCodeInvalid, loc, e.vs.message())
				}
			}
		case !hasExt || extVal == nil:
			v.add(CodeStructure, loc, "null is not allowed without a primitive extension")
		}
		if hasExt && extVal != nil {
			obj, ok := asObject(extVal)
			switch {
			case !ok:
				v.add(CodeStructure, loc, "expected a primitive extension object")
			case len(obj) == 0:
				v.add(CodeStructure, loc, "empty objects are not allowed")
			default:
				v.object(obj, t, loc)
			}
		}
		return
	}
	obj, ok := asObject(val)
	switch {
	case val == nil:
		v.add(CodeStructure, loc, "null is not allowed")
		return
	case !ok:
		v.add(CodeStructure, loc, "expected an object ("+t.name+")")
		return
	case len(obj) == 0:
		v.add(CodeStructure, loc, "empty objects are not allowed")
		return
	}
	if t.kind == kindResource {
		v.resource(obj, loc, e.name == "contained")
		return
	}
	v.object(obj, t, loc)
	if e.vs != nil {
		v.checkCodings(e.vs, t.name, obj, loc)
	}
}

// asObject accepts a JSON object as Parse produces it, or a nested Resource built by hand.
func asObject(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case Resource:
		return m, true
	}
	return nil, false
}

// checkCodings applies a required binding to a Coding or CodeableConcept. It is conservative:
// a coding is rejected only when its system is one the value set draws from and its code is
// not among that system's allowed codes.
func (v *validator) checkCodings(vs *valueSet, typ string, obj map[string]any, loc []byte) {
	check := func(c map[string]any, cloc []byte) {
		sys, _ := c["system"].(string)
		code, ok := c["code"].(string)
		if allowed := vs.bySys[sys]; ok && allowed != nil && !allowed[code] {
			v.add(CodeCodeInvalid, appendName(cloc, "code"), vs.message())
		}
	}
	switch typ {
	case "Coding":
		check(obj, loc)
	case "CodeableConcept":
		codings, _ := obj["coding"].([]any)
		for i, c := range codings {
			if m, ok := asObject(c); ok {
				check(m, appendIndex(appendName(loc, "coding"), i))
			}
		}
	}
}

func (vs *valueSet) message() string {
	if vs.list != "" {
		return "code not in required value set " + vs.url + " (allowed: " + vs.list + ")"
	}
	return "code not in required value set " + vs.url
}

// appendName appends ".name" to a location. Names that do not look like FHIR element names
// (which could carry arbitrary client text) are replaced so that they never reach a message.
func appendName(loc []byte, name string) []byte {
	loc = append(loc, '.')
	if !safeName(name) {
		return append(loc, "(invalid name)"...)
	}
	return append(loc, name...)
}

func safeName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func appendIndex(loc []byte, i int) []byte {
	loc = append(loc, '[')
	loc = strconv.AppendInt(loc, int64(i), 10)
	return append(loc, ']')
}
