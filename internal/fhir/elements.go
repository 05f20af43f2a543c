package fhir

import "sort"

// IsElement reports whether name is a top-level JSON property of the
// resource type typ (a choice element counts under each of its JSON names
// and under its bare name, e.g. "value" and "valueQuantity").
func IsElement(typ, name string) bool {
	t := loadSpec().types[typ]
	if t == nil {
		return false
	}
	if _, ok := t.elems[name]; ok {
		return true
	}
	for _, e := range t.elems {
		if e.choiceName == name+"[x]" {
			return true
		}
	}
	return false
}

// IsMandatory reports whether the top-level element name of typ has a
// minimum cardinality above zero.
func IsMandatory(typ, name string) bool {
	t := loadSpec().types[typ]
	if t == nil {
		return false
	}
	e, ok := t.elems[name]
	return ok && e.min > 0
}

// ResourceTypes returns every concrete R4 resource type, sorted.
func ResourceTypes() []string {
	var out []string
	for name, t := range loadSpec().types {
		if t.kind == kindResource && !t.abstract {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// IsSummary reports whether the top-level element name of typ is part of
// the summary view (_summary=true), as the R4 StructureDefinitions mark it.
func IsSummary(typ, name string) bool {
	t := loadSpec().types[typ]
	if t == nil {
		return false
	}
	e, ok := t.elems[name]
	return ok && e.summary
}

// MaxOne reports whether the element path (JSON names from a resource of
// type typ, such as "meta", "lastUpdated"; a choice element by its bare
// name, such as "effective") exists and each of its steps occurs at most
// once, so that the path gives a resource at most one value.
func MaxOne(typ string, path ...string) bool {
	t := loadSpec().types[typ]
	for i, name := range path {
		if t == nil {
			return false
		}
		e, ok := t.elems[name]
		if !ok {
			// A choice element by its bare name: at most one of its typed
			// forms occurs, and nothing can follow it without a type.
			if i != len(path)-1 {
				return false
			}
			for _, c := range t.elems {
				if c.choiceName == name+"[x]" {
					return c.max == 1
				}
			}
			return false
		}
		if e.max != 1 {
			return false
		}
		t = e.typ
	}
	return len(path) > 0
}
