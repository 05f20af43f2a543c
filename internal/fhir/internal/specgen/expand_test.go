package main

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpand(t *testing.T) {
	var p pkg
	p.cs = map[string]*codeSystem{}
	p.vs = map[string]*valueSet{}
	addCS := func(js string) {
		c := new(codeSystem)
		if err := json.Unmarshal([]byte(js), c); err != nil {
			t.Fatal(err)
		}
		p.cs[c.URL] = c
	}
	addVS := func(js string) {
		v := new(valueSet)
		if err := json.Unmarshal([]byte(js), v); err != nil {
			t.Fatal(err)
		}
		p.vs[v.URL] = v
	}
	addCS(`{"url":"cs:tree","content":"complete","concept":[{"code":"a","concept":[{"code":"a1","concept":[{"code":"a11"}]},{"code":"a2"}]},{"code":"b"}]}`)
	addCS(`{"url":"cs:v3","content":"complete","concept":[{"code":"root"},{"code":"kid","property":[{"code":"subsumedBy","valueCode":"root"}]},{"code":"other"}]}`)
	addCS(`{"url":"cs:frag","content":"fragment","concept":[{"code":"x"}]}`)
	addVS(`{"url":"vs:whole","compose":{"include":[{"system":"cs:tree"}]}}`)
	addVS(`{"url":"vs:list","compose":{"include":[{"system":"http://snomed.info/sct","concept":[{"code":"123"}]}]}}`)
	addVS(`{"url":"vs:isa","compose":{"include":[{"system":"cs:tree","filter":[{"property":"concept","op":"is-a","value":"a1"}]}]}}`)
	addVS(`{"url":"vs:desc","compose":{"include":[{"system":"cs:v3","filter":[{"property":"concept","op":"descendent-of","value":"root"}]}]}}`)
	addVS(`{"url":"vs:import","compose":{"include":[{"valueSet":["vs:list|4.0.1"]},{"system":"cs:tree","concept":[{"code":"b"}]}],
		"exclude":[{"system":"cs:tree","concept":[{"code":"b"}]}]}}`)
	addVS(`{"url":"vs:external","compose":{"include":[{"system":"http://snomed.info/sct"}]}}`)
	addVS(`{"url":"vs:fragment","compose":{"include":[{"system":"cs:frag"}]}}`)
	addVS(`{"url":"vs:regex","compose":{"include":[{"system":"cs:tree","filter":[{"property":"code","op":"regex","value":"a.*"}]}]}}`)
	addVS(`{"url":"vs:partial","compose":{"include":[{"system":"cs:tree"},{"valueSet":["vs:external"]}]}}`)
	addVS(`{"url":"vs:cycle","compose":{"include":[{"valueSet":["vs:cycle"]}]}}`)

	e := &expander{p: &p, done: map[string]codeSet{}, stack: map[string]bool{}}
	tests := map[string]map[string][]string{
		"vs:whole":    {"cs:tree": {"a", "a1", "a11", "a2", "b"}},
		"vs:list":     {"http://snomed.info/sct": {"123"}},
		"vs:isa":      {"cs:tree": {"a1", "a11"}},
		"vs:desc":     {"cs:v3": {"kid"}},
		"vs:import":   {"http://snomed.info/sct": {"123"}, "cs:tree": {}},
		"vs:external": nil,
		"vs:fragment": nil,
		"vs:regex":    nil,
		"vs:partial":  nil,
		"vs:cycle":    nil,
		"vs:missing":  nil,
	}
	for url, want := range tests {
		s := e.expand(url + "|4.0.1")
		var got map[string][]string
		if s != nil {
			got = s.sorted()
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("expand(%s) mismatch (-want +got):\n%s", url, diff)
		}
	}
}
