// Command specgen reads the official FHIR R4 npm package (hl7.fhir.r4.examples-4.0.1.tgz)
// and writes the compact, gzip-compressed spec table that package fhir embeds.
//
// It keeps only base definitions (kind resource, complex-type or primitive-type with
// derivation specialization, plus the abstract roots) and, for each element, its types,
// cardinality, contentReference and required value-set binding. Required bindings are
// resolved to their codes when the ValueSet can be expanded from code systems in the
// package; bindings that cannot be expanded (external systems such as SNOMED CT, UCUM,
// BCP-47 or MIME types) are left out, so the validator never guesses at them.
//
// Usage: go run ./internal/specgen -in /path/to/hl7.fhir.r4.examples-4.0.1.tgz -out spec_r4.json.gz
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

	"github.com/phivault/phivault/internal/fhir/internal/specfmt"
)

func main() {
	in := flag.String("in", "../../../shared/data/fhir/hl7.fhir.r4.examples-4.0.1.tgz", "FHIR R4 package tgz")
	out := flag.String("out", "spec_r4.json.gz", "output file")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		log.Fatal(err)
	}
}

func run(in, out string) error {
	pkg, err := readPackage(in)
	if err != nil {
		return err
	}
	spec, err := build(pkg)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	// A fixed header (no name, no mtime) keeps the output reproducible.
	if _, err := zw.Write(raw); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	log.Printf("specgen: %d types, %d value sets, %d bytes json, %d bytes gz",
		len(spec.Types), len(spec.ValueSets), len(raw), buf.Len())
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// pkg holds the raw definitions read from the package.
type pkg struct {
	sds []*structureDefinition
	vs  map[string]*valueSet   // by canonical url
	cs  map[string]*codeSystem // by canonical url
}

func readPackage(name string) (*pkg, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	p := &pkg{vs: map[string]*valueSet{}, cs: map[string]*codeSystem{}}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		base := path.Base(h.Name)
		var dst any
		switch {
		case strings.HasPrefix(base, "StructureDefinition-"):
			sd := new(structureDefinition)
			p.sds = append(p.sds, sd)
			dst = sd
		case strings.HasPrefix(base, "ValueSet-"):
			v := new(valueSet)
			dst = v
			defer func() { p.vs[v.URL] = v }()
		case strings.HasPrefix(base, "CodeSystem-"):
			c := new(codeSystem)
			dst = c
			defer func() { p.cs[c.URL] = c }()
		default:
			continue
		}
		if err := json.NewDecoder(tr).Decode(dst); err != nil {
			return nil, fmt.Errorf("%s: %v", h.Name, err)
		}
	}
	return p, nil
}

type structureDefinition struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Kind       string `json:"kind"`
	Abstract   bool   `json:"abstract"`
	Derivation string `json:"derivation"`
	BaseDef    string `json:"baseDefinition"`
	Snapshot   struct {
		Element []elementDefinition `json:"element"`
	} `json:"snapshot"`
}

type elementDefinition struct {
	Path             string `json:"path"`
	Min              int    `json:"min"`
	Max              string `json:"max"`
	ContentReference string `json:"contentReference"`
	IsSummary        bool   `json:"isSummary"`
	Type             []struct {
		Code      string      `json:"code"`
		Extension []extension `json:"extension"`
	} `json:"type"`
	Binding *struct {
		Strength string `json:"strength"`
		ValueSet string `json:"valueSet"`
	} `json:"binding"`
}

type extension struct {
	URL         string `json:"url"`
	ValueURL    string `json:"valueUrl"`
	ValueString string `json:"valueString"`
}

const (
	extFHIRType = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
	extRegex    = "http://hl7.org/fhir/StructureDefinition/regex"
)

// isBase reports whether sd is a base definition of R4 (not a profile or logical model).
func isBase(sd *structureDefinition) bool {
	switch sd.Kind {
	case "resource", "complex-type", "primitive-type":
	default:
		return false
	}
	return sd.Derivation == "specialization" || sd.BaseDef == ""
}

func build(p *pkg) (*specfmt.Spec, error) {
	e := &expander{p: p, done: map[string]codeSet{}, stack: map[string]bool{}}
	spec := &specfmt.Spec{FHIRVersion: "4.0.1", ValueSets: map[string]map[string][]string{}}
	seen := map[string]bool{}
	for _, sd := range p.sds {
		if !isBase(sd) {
			continue
		}
		if seen[sd.Type] {
			return nil, fmt.Errorf("duplicate base definition of %s", sd.Type)
		}
		seen[sd.Type] = true
		t := specfmt.Type{Name: sd.Type, Kind: sd.Kind, Abstract: sd.Abstract}
		for i, ed := range sd.Snapshot.Element {
			if i == 0 {
				continue // the root element describes the type itself
			}
			if sd.Kind == "primitive-type" && ed.Path == sd.Type+".value" {
				for _, ty := range ed.Type {
					for _, x := range ty.Extension {
						if x.URL == extRegex {
							t.Regex = x.ValueString
						}
					}
				}
				continue
			}
			el := specfmt.Element{Path: ed.Path, Min: ed.Min, Max: -1, Summary: ed.IsSummary}
			if ed.Max != "*" {
				if _, err := fmt.Sscan(ed.Max, &el.Max); err != nil {
					return nil, fmt.Errorf("%s: bad max", ed.Path)
				}
			}
			el.Ref = strings.TrimPrefix(ed.ContentReference, "#")
			for _, ty := range ed.Type {
				code := ty.Code
				if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
					code = "string"
					for _, x := range ty.Extension {
						if x.URL == extFHIRType {
							code = x.ValueURL
						}
					}
				}
				el.Types = append(el.Types, code)
			}
			// R4 snapshots type Resource.id as System.String; the spec says id.
			if sd.Kind == "resource" && ed.Path == sd.Type+".id" {
				el.Types = []string{"id"}
			}
			if b := ed.Binding; b != nil && b.Strength == "required" && b.ValueSet != "" {
				url := canonical(b.ValueSet)
				if s := e.expand(url); len(s) > 0 {
					el.ValueSet = url
					spec.ValueSets[url] = s.sorted()
				}
			}
			t.Elements = append(t.Elements, el)
		}
		spec.Types = append(spec.Types, t)
	}
	sort.Slice(spec.Types, func(i, j int) bool { return spec.Types[i].Name < spec.Types[j].Name })
	return spec, nil
}
