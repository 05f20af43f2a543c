// Command gen reads the official FHIR R4 package (hl7.fhir.r4.examples
// 4.0.1 .tgz) and writes the search parameter table embedded by package
// searchparam: every SearchParameter with an expression, its expression
// split per base type, targets, composite components, and the Patient
// CompartmentDefinition. Run it through go generate in that package.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/phivault/phivault/internal/fhir/fhirpath"
	"github.com/phivault/phivault/internal/fhir/searchparam/internal/table"
	"github.com/phivault/phivault/internal/fhir/searchparam/internal/union"
)

func main() {
	in := flag.String("in", "../../../../shared/data/fhir/hl7.fhir.r4.examples-4.0.1.tgz", "FHIR R4 package .tgz")
	out := flag.String("out", "r4.json.gz", "output file")
	flag.Parse()
	t, err := build(*in)
	if err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	enc := json.NewEncoder(gz)
	if err := enc.Encode(t); err != nil {
		log.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s: %d params, %d resource types, %d bytes", *out, len(t.Params), len(t.ResourceTypes), buf.Len())
}

type spJSON struct {
	URL          string   `json:"url"`
	Code         string   `json:"code"`
	Type         string   `json:"type"`
	Expression   string   `json:"expression"`
	Base         []string `json:"base"`
	Target       []string `json:"target"`
	Experimental bool     `json:"experimental"`
	Component    []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

func build(in string) (*table.Table, error) {
	files, err := readPackage(in)
	if err != nil {
		return nil, err
	}
	t := &table.Table{FHIRVersion: "4.0.1", Compartment: map[string][]string{}}
	var sps []spJSON
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		b := files[name]
		var head struct {
			ResourceType, Kind, Derivation, Type, BaseDefinition string
			Abstract                                             bool
		}
		if err := json.Unmarshal(b, &head); err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		switch head.ResourceType {
		case "StructureDefinition":
			if head.Kind == "resource" && head.Derivation == "specialization" && !head.Abstract {
				t.ResourceTypes = append(t.ResourceTypes, head.Type)
				if strings.HasSuffix(head.BaseDefinition, "/DomainResource") {
					t.DomainResources = append(t.DomainResources, head.Type)
				}
			}
		case "SearchParameter":
			var sp spJSON
			if err := json.Unmarshal(b, &sp); err != nil {
				return nil, fmt.Errorf("%s: %v", name, err)
			}
			if sp.Expression == "" || sp.Type == "special" {
				continue // _text, _content, _query, _filter, extension params without FHIRPath
			}
			if strings.HasPrefix(sp.URL, "http://hl7.org/fhir/SearchParameter/example") {
				continue // illustrative examples of the SearchParameter resource, not definitions
			}
			if _, err := fhirpath.Parse(sp.Expression); err != nil {
				return nil, fmt.Errorf("%s: %v", name, err)
			}
			sps = append(sps, sp)
		case "CompartmentDefinition":
			var cd struct {
				Code     string
				Resource []struct {
					Code  string
					Param []string
				}
			}
			if err := json.Unmarshal(b, &cd); err != nil {
				return nil, err
			}
			if cd.Code != "Patient" {
				continue
			}
			for _, r := range cd.Resource {
				if len(r.Param) > 0 {
					t.Compartment[r.Code] = r.Param
				}
			}
		}
	}
	sort.Strings(t.ResourceTypes)
	sort.Strings(t.DomainResources)
	// Core definitions win over extension-package duplicates of a base/code.
	sort.SliceStable(sps, func(i, j int) bool { return rank(sps[i]) < rank(sps[j]) })
	byURL := map[string]spJSON{}
	for _, sp := range sps {
		byURL[sp.URL] = sp
	}
	seen := map[string]string{}
	for _, sp := range sps {
		p := table.Param{URL: sp.URL, Code: sp.Code, Type: sp.Type, Targets: sp.Target, Expressions: map[string]string{}}
		for _, base := range sp.Base {
			key := base + "." + sp.Code
			if prev, dup := seen[key]; dup {
				log.Printf("skip %s for %s: already defined by %s", sp.URL, key, prev)
				continue
			}
			e := union.ForBase(sp.Expression, base)
			if e == "" {
				return nil, fmt.Errorf("%s: no part of %q applies to %s", sp.URL, sp.Expression, base)
			}
			seen[key] = sp.URL
			p.Expressions[base] = e
		}
		for _, c := range sp.Component {
			def, ok := byURL[c.Definition]
			if !ok {
				return nil, fmt.Errorf("%s: component %s not found", sp.URL, c.Definition)
			}
			p.Components = append(p.Components, table.Component{Definition: c.Definition, Code: def.Code, Type: def.Type, Expression: c.Expression})
		}
		if len(p.Expressions) > 0 {
			t.Params = append(t.Params, p)
		}
	}
	sort.Slice(t.Params, func(i, j int) bool { return t.Params[i].URL < t.Params[j].URL })
	return t, nil
}

// rank orders definitions: core (non-experimental) first, then by URL.
func rank(sp spJSON) string {
	r := "0"
	if sp.Experimental || strings.Contains(sp.URL, "-extensions-") {
		r = "1"
	}
	return r + sp.URL
}

func readPackage(in string) (map[string][]byte, error) {
	f, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		base := path.Base(h.Name)
		if !strings.HasSuffix(base, ".json") || !(strings.HasPrefix(base, "SearchParameter-") ||
			strings.HasPrefix(base, "StructureDefinition-") || strings.HasPrefix(base, "CompartmentDefinition-")) {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[base] = b
	}
}
