package main

import (
	"sort"
	"strings"
)

type valueSet struct {
	URL     string `json:"url"`
	Compose *struct {
		Include []vsInclude `json:"include"`
		Exclude []vsInclude `json:"exclude"`
	} `json:"compose"`
}

type vsInclude struct {
	System  string `json:"system"`
	Concept []struct {
		Code string `json:"code"`
	} `json:"concept"`
	Filter []struct {
		Property string `json:"property"`
		Op       string `json:"op"`
		Value    string `json:"value"`
	} `json:"filter"`
	ValueSet []string `json:"valueSet"`
}

type codeSystem struct {
	URL     string    `json:"url"`
	Content string    `json:"content"`
	Concept []concept `json:"concept"`
}

type concept struct {
	Code     string `json:"code"`
	Property []struct {
		Code      string `json:"code"`
		ValueCode string `json:"valueCode"`
	} `json:"property"`
	Concept []concept `json:"concept"`
}

// codeSet maps a code system url to the set of codes it contributes.
type codeSet map[string]map[string]bool

func (s codeSet) add(system, code string) {
	m := s[system]
	if m == nil {
		m = map[string]bool{}
		s[system] = m
	}
	m[code] = true
}

// expander resolves value sets to code sets, memoising results; nil means "cannot be expanded".
type expander struct {
	p     *pkg
	done  map[string]codeSet
	stack map[string]bool
}

func canonical(u string) string {
	if i := strings.IndexByte(u, '|'); i >= 0 {
		return u[:i]
	}
	return u
}

func (e *expander) expand(url string) codeSet {
	url = canonical(url)
	if s, ok := e.done[url]; ok {
		return s
	}
	if e.stack[url] {
		return nil // cycle: give up rather than guess
	}
	e.stack[url] = true
	defer delete(e.stack, url)
	s := e.expandVS(e.p.vs[url])
	e.done[url] = s
	return s
}

func (e *expander) expandVS(vs *valueSet) codeSet {
	if vs == nil || vs.Compose == nil || len(vs.Compose.Include) == 0 {
		return nil
	}
	out := codeSet{}
	for _, inc := range vs.Compose.Include {
		s := e.include(inc)
		if s == nil {
			return nil
		}
		for sys, codes := range s {
			for c := range codes {
				out.add(sys, c)
			}
		}
	}
	for _, exc := range vs.Compose.Exclude {
		if len(exc.Filter) > 0 || len(exc.ValueSet) > 0 || len(exc.Concept) == 0 {
			return nil
		}
		for _, c := range exc.Concept {
			delete(out[exc.System], c.Code)
		}
	}
	return out
}

func (e *expander) include(inc vsInclude) codeSet {
	var s codeSet
	if inc.System != "" {
		s = codeSet{}
		switch {
		case len(inc.Concept) > 0 && len(inc.Filter) == 0:
			for _, c := range inc.Concept {
				s.add(inc.System, c.Code)
			}
		case len(inc.Concept) == 0:
			cs := e.p.cs[canonical(inc.System)]
			if cs == nil || cs.Content != "complete" {
				return nil
			}
			codes := map[string]bool{}
			walk(cs.Concept, func(c *concept) { codes[c.Code] = true })
			for _, f := range inc.Filter {
				if f.Property != "concept" || (f.Op != "is-a" && f.Op != "descendent-of") {
					return nil
				}
				codes = descendants(cs, f.Value, f.Op == "is-a")
				if len(codes) == 0 {
					return nil
				}
			}
			for c := range codes {
				s.add(inc.System, c)
			}
		default:
			return nil
		}
	}
	for _, u := range inc.ValueSet {
		sub := e.expand(u)
		if sub == nil {
			return nil
		}
		if s == nil {
			s = codeSet{}
			for sys, codes := range sub {
				for c := range codes {
					s.add(sys, c)
				}
			}
			continue
		}
		// system and valueSet together mean the intersection.
		for sys, codes := range s {
			for c := range codes {
				if !sub[sys][c] {
					delete(codes, c)
				}
			}
		}
	}
	return s
}

func walk(cs []concept, f func(*concept)) {
	for i := range cs {
		f(&cs[i])
		walk(cs[i].Concept, f)
	}
}

// descendants returns root's descendants in cs (and root itself when self is set), following
// both nested concepts and the subsumedBy/parent properties that v3 code systems use.
func descendants(cs *codeSystem, root string, self bool) map[string]bool {
	children := map[string][]string{}
	var nest func(parent string, list []concept)
	nest = func(parent string, list []concept) {
		for i := range list {
			c := &list[i]
			if parent != "" {
				children[parent] = append(children[parent], c.Code)
			}
			for _, p := range c.Property {
				if p.Code == "subsumedBy" || p.Code == "parent" {
					children[p.ValueCode] = append(children[p.ValueCode], c.Code)
				}
			}
			nest(c.Code, c.Concept)
		}
	}
	nest("", cs.Concept)
	out := map[string]bool{}
	var visit func(string)
	visit = func(c string) {
		for _, k := range children[c] {
			if !out[k] {
				out[k] = true
				visit(k)
			}
		}
	}
	visit(root)
	if self {
		out[root] = true
	}
	return out
}

// sorted flattens a code set into system -> sorted codes.
func (s codeSet) sorted() map[string][]string {
	out := map[string][]string{}
	for sys, codes := range s {
		l := make([]string, 0, len(codes))
		for c := range codes {
			l = append(l, c)
		}
		sort.Strings(l)
		out[sys] = l
	}
	return out
}
