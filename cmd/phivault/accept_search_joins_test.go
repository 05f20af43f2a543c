package main

// Search suite cases that join resources (chains, _has, _include,
// _revinclude) or shape the result (_sort, _summary=count, _total).

import (
	"slices"
	"strings"
)

// set returns the keys of the resources of typ that f accepts.
func (s *suite) set(typ string, f func(*res) bool) map[string]bool { return keySet(s.where(typ, f)) }

func (s *suite) chainCases() {
	p := s.patient(30, 150, 3, 7)
	fam := pFamily(p)[0]
	famPats := s.set("Patient", func(r *res) bool { return strMatch(pName(r), "", fam) })
	s.add("chain", "Observation", enc("subject:Patient.name", fam), func(r *res) bool { return refIn(r, "subject", famPats) }).pager = true
	famOnly := s.set("Patient", func(r *res) bool { return strMatch(pFamily(r), "", fam) })
	s.add("chain", "Observation", enc("patient.family", fam, "code", "8302-2"), func(r *res) bool {
		return refIn(r, "subject", famOnly) && tokenMatch(obsCode(r), "", "8302-2")
	}).pager = true
	birth := str1(p.body, "birthDate")
	born := s.set("Patient", func(r *res) bool { return dateMatch(pBirth(r), birth, s.now) })
	s.add("chain", "Encounter", enc("subject.birthdate", birth), func(r *res) bool { return refIn(r, "subject", born) }).pager = true
	north := s.set("Organization", func(r *res) bool { return strMatch(orgName(r), "", "north shore") })
	s.add("chain", "Encounter", enc("service-provider.name", "north shore", "class", "EMER"), func(r *res) bool {
		return refIn(r, "serviceProvider", north) && tokenMatch(codings(r, "class"), "", "EMER")
	}).pager = true
	city := pCity(p)[0]
	inCity := s.set("Patient", func(r *res) bool { return strMatch(pCity(r), "", city) })
	s.add("chain", "Condition", enc("subject:Patient.address-city", city, "code", "15777000"), func(r *res) bool {
		return refIn(r, "subject", inCity) && tokenMatch(codings(r, "code"), "", "15777000")
	}).pager = true
	obsByEnc := s.byRef("Observation", "encounter")
	em := refs(s.first("Encounter", func(r *res) bool { return tokenMatch(codings(r, "class"), "", "EMER") && len(obsByEnc[r.key()]) > 0 }), "subject")[0]
	emer := s.set("Encounter", func(r *res) bool { return tokenMatch(codings(r, "class"), "", "EMER") && hasRef(r, "subject", em) })
	s.inner(len(s.set("Encounter", func(r *res) bool { return tokenMatch(codings(r, "class"), "", "EMER") })))
	s.add("chain", "Observation", enc("encounter.class", "EMER", "subject", em), func(r *res) bool {
		return hasRef(r, "subject", em) && refIn(r, "encounter", emer)
	})
	ssn := ""
	for _, id := range identifiers(p, "identifier") {
		if id.typeCode == "SS" {
			ssn = id.code
		}
	}
	bySSN := s.set("Patient", func(r *res) bool {
		return tokenMatch(identifiers(r, "identifier"), "", "http://hl7.org/fhir/sid/us-ssn|"+ssn)
	})
	s.add("chain", "Immunization", enc("patient.identifier", "http://hl7.org/fhir/sid/us-ssn|"+ssn), func(r *res) bool { return refIn(r, "patient", bySSN) }).post = true
	lang := s.set("Patient", func(r *res) bool { return tokenMatch(codings(r, "communication.language"), "", "el,hi,ar") })
	s.add("chain", "AllergyIntolerance", enc("patient:Patient.language", "el,hi,ar"), func(r *res) bool { return refIn(r, "patient", lang) }).pager = true

	// Two levels.
	s.inner(len(famPats))
	encOfFam := s.set("Encounter", func(r *res) bool { return refIn(r, "subject", famOnly) })
	s.add("chain2", "Observation", enc("encounter:Encounter.subject:Patient.family", fam), func(r *res) bool { return refIn(r, "encounter", encOfFam) }).pager = true
	encNorth := s.set("Encounter", func(r *res) bool { return refIn(r, "serviceProvider", north) })
	s.inner(len(encOfFam))
	s.inner(len(encNorth))
	s.add("chain2", "Observation", enc("encounter.service-provider.name", "north shore", "code", "2339-0"), func(r *res) bool {
		return refIn(r, "encounter", encNorth) && tokenMatch(obsCode(r), "", "2339-0")
	}).pager = true
	given := pGiven(p)[0]
	gv := s.set("Patient", func(r *res) bool { return strMatch(pGiven(r), "", given) })
	encGiven := s.set("Encounter", func(r *res) bool { return refIn(r, "subject", gv) })
	s.add("chain2", "Condition", enc("encounter.subject:Patient.given", given), func(r *res) bool { return refIn(r, "encounter", encGiven) }).pager = true
	s.inner(len(encGiven))
	obsFam := s.set("Observation", func(r *res) bool { return refIn(r, "subject", famOnly) })
	s.inner(len(obsFam))
	s.add("chain2", "DiagnosticReport", enc("result:Observation.subject:Patient.family", fam), func(r *res) bool { return refIn(r, "result", obsFam) }).pager = true

	// _has, and nested _has.
	haveFEV := refsOf(s.where("Observation", func(r *res) bool { return tokenMatch(obsCode(r), "", "19926-5") }), "subject")
	s.add("has", "Patient", enc("_has:Observation:patient:code", "19926-5"), func(r *res) bool { return haveFEV[r.key()] }).pager = true
	diab := refsOf(s.where("Condition", func(r *res) bool { return tokenMatch(codings(r, "code"), "", "44054006") }), "subject")
	s.add("has", "Patient", enc("_has:Condition:subject:code", "44054006"), func(r *res) bool { return diab[r.key()] }).post = true
	s.add("has", "Patient", enc("_has:Condition:subject:code", "44054006", "gender", "male"), func(r *res) bool {
		return diab[r.key()] && str1(r.body, "gender") == "male"
	}).pager = true
	hiv := refsOf(s.where("Observation", func(r *res) bool { return tokenMatch(obsCode(r), "", "856AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") }), "encounter")
	hivSubj := s.pickOf(hiv)
	s.add("has", "Encounter", enc("_has:Observation:encounter:code", "856AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "subject", hivSubj), func(r *res) bool {
		return hiv[r.key()] && hasRef(r, "subject", hivSubj)
	}).pager = true
	stroke := refsOf(s.where("Condition", func(r *res) bool { return tokenMatch(codings(r, "code"), "", "230690007") }), "encounter")
	pracStroke := refsOf(s.where("Encounter", func(r *res) bool { return stroke[r.key()] }), "participant.individual")
	s.add("has", "Practitioner", enc("_has:Encounter:participant:_has:Condition:encounter:code", "230690007"), func(r *res) bool { return pracStroke[r.key()] }).pager = true
	patStroke := refsOf(s.where("Encounter", func(r *res) bool { return stroke[r.key()] }), "subject")
	s.add("has", "Patient", enc("_has:Encounter:patient:_has:Condition:encounter:code", "230690007"), func(r *res) bool { return patStroke[r.key()] }).pager = true
	imm := refsOf(s.where("Immunization", func(r *res) bool { return tokenMatch(codings(r, "vaccineCode"), "", "62") }), "patient")
	s.add("has", "Patient", enc("_has:Immunization:patient:vaccine-code", "62", "address-city", "bost"), func(r *res) bool {
		return imm[r.key()] && strMatch(pCity(r), "", "bost")
	}).pager = true
}

// inner fails the suite when the inner set of a chain is larger than the
// server resolves (2,000 ids, docs/search.md): such a case needs another
// value, not a weaker expectation.
func (s *suite) inner(n int) {
	s.t.Helper()
	if n > 2000 {
		s.t.Fatalf("a chain's inner set holds %d resources, more than the 2,000 the server resolves; pick another value", n)
	}
}

// refsOf returns the references at path of rs, as a set.
func refsOf(rs []*res, path string) map[string]bool {
	out := map[string]bool{}
	for _, r := range rs {
		for _, k := range refs(r, path) {
			out[k] = true
		}
	}
	return out
}

// pickOf returns the subject of the first of a set of Encounter keys.
func (s *suite) pickOf(set map[string]bool) string {
	ks := make([]string, 0, len(set))
	for k := range set {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return refs(s.m.byKey[ks[0]], "subject")[0]
}

func (s *suite) includeSortCases() {
	p := s.patient(40, 150, 4, 8)
	subj := "Patient/" + p.id
	of := func(r *res) bool { return hasRef(r, "subject", subj) }
	refsAt := func(paths ...string) func(r *res) []string {
		return func(r *res) []string {
			var out []string
			for _, path := range paths {
				out = append(out, refs(r, path)...)
			}
			return out
		}
	}
	c := s.add("include", "Observation", enc("code", "19926-5", "_include", "Observation:subject"), func(r *res) bool { return tokenMatch(obsCode(r), "", "19926-5") })
	c.incl, c.pager = refsAt("subject"), true
	c = s.add("include", "Encounter", enc("subject", subj, "_include", "Encounter:service-provider", "_include", "Encounter:participant:Practitioner"), of)
	c.incl, c.pager = refsAt("serviceProvider", "participant.individual"), true
	c = s.add("include", "DiagnosticReport", enc("subject", subj, "_include", "DiagnosticReport:result"), of)
	c.incl, c.pager, c.post = refsAt("result"), true, true
	encOf := func(r *res) []string {
		out := refs(r, "encounter")
		for _, e := range out {
			out = append(out, refs(s.m.byKey[e], "serviceProvider")...)
		}
		return out
	}
	c = s.add("include", "Observation", enc("subject", subj, "code", "29463-7", "_include", "Observation:encounter", "_include:iterate", "Encounter:service-provider"), func(r *res) bool {
		return of(r) && tokenMatch(obsCode(r), "", "29463-7")
	})
	c.incl, c.pager = encOf, true
	condOf := s.byRef("Condition", "subject")
	c = s.add("revinclude", "Patient", enc("_id", p.id, "_revinclude", "Condition:subject"), func(r *res) bool { return r.id == p.id })
	c.incl = func(r *res) []string { return keyList(condOf[r.key()]) }
	immOf := s.byRef("Immunization", "patient")
	fam := pFamily(p)[0]
	c = s.add("revinclude", "Patient", enc("family:exact", fam, "_revinclude", "Immunization:patient"), func(r *res) bool { return strMatch(pFamily(r), "exact", fam) })
	c.incl = func(r *res) []string { return keyList(immOf[r.key()]) }
	encsOf, condByEnc := s.byRef("Encounter", "subject"), s.byRef("Condition", "encounter")
	c = s.add("revinclude", "Patient", enc("_id", p.id, "_revinclude", "Encounter:subject", "_revinclude:iterate", "Condition:encounter"), func(r *res) bool { return r.id == p.id })
	c.incl = func(r *res) []string {
		out := keyList(encsOf[r.key()])
		for _, e := range encsOf[r.key()] {
			out = append(out, keyList(condByEnc[e.key()])...)
		}
		return out
	}

	// _sort on dates and strings, both ways, on whole walks.
	c = s.add("sort", "Observation", enc("subject", subj, "_sort", "date"), of)
	c.order, c.pager = dateOrder(obsDate, false), true
	c = s.add("sort", "Observation", enc("subject", subj, "_sort", "-date"), of)
	c.order, c.pager, c.post = dateOrder(obsDate, true), true, true
	c = s.add("sort", "Encounter", enc("subject", subj, "_sort", "-date"), of)
	c.order, c.pager = dateOrder(encDate, true), true
	c = s.add("sort", "Encounter", enc("subject", subj, "_sort", "date"), of)
	c.order, c.pager = dateOrder(encDate, false), true
	c = s.add("sort", "Condition", enc("subject", subj, "_sort", "-onset-date"), of)
	c.order, c.pager = dateOrder(condOnset, true), true
	boston := func(r *res) bool { return strMatch(pCity(r), "", "boston") }
	c = s.add("sort", "Patient", enc("address-city", "boston", "_sort", "family"), boston)
	c.order, c.pager = stringOrder(pFamily, false), true
	c = s.add("sort", "Patient", enc("address-city", "boston", "_sort", "-family"), boston)
	c.order, c.pager = stringOrder(pFamily, true), true
	c = s.add("sort", "Patient", enc("address-city", "boston", "_sort", "-birthdate"), boston)
	c.order, c.pager = dateOrder(pBirth, true), true
	c = s.add("sort", "Patient", enc("language", "es", "_sort", "given,-birthdate"), func(r *res) bool { return tokenMatch(codings(r, "communication.language"), "", "es") })
	c.order, c.pager = then(stringOrder(pGiven, false), dateOrder(pBirth, true)), true
	c = s.add("sort", "Practitioner", enc("address-city", "salem", "_sort", "-name"), func(r *res) bool { return strMatch(strs(r.body, "address.city"), "", "salem") })
	c.order, c.pager = stringOrder(pName, true), true
	c = s.add("sort", "Organization", enc("address-city", "b", "_sort", "name"), func(r *res) bool { return strMatch(strs(r.body, "address.city"), "", "b") })
	c.order, c.pager = stringOrder(orgName, false), true

	// Totals.
	for _, q := range []struct {
		typ, q string
		f      func(r *res) bool
	}{
		{"Observation", enc("code", "8302-2"), func(r *res) bool { return tokenMatch(obsCode(r), "", "8302-2") }},
		{"Encounter", enc("class", "AMB"), func(r *res) bool { return tokenMatch(codings(r, "class"), "", "AMB") }},
		{"Condition", enc("clinical-status", "active"), func(r *res) bool { return tokenMatch(codings(r, "clinicalStatus"), "", "active") }},
		{"Patient", enc("gender", "male"), func(r *res) bool { return str1(r.body, "gender") == "male" }},
		{"Immunization", enc("date", "ge2015"), func(r *res) bool { return dateMatch(spans(r, "occurrenceDateTime"), "ge2015", s.now) }},
		{"Observation", enc("value-quantity", "gt300"), func(r *res) bool { return qtyMatch(obsValue(r), "gt300") }},
	} {
		c := s.add("count", q.typ, q.q+"&_summary=count", q.f)
		c.count = true
	}
	for _, q := range []struct {
		typ, q string
		f      func(r *res) bool
	}{
		{"Observation", enc("subject", subj, "_total", "accurate"), of},
		{"Observation", enc("subject", subj, "date", "ge2012", "_total", "accurate"), func(r *res) bool { return of(r) && dateMatch(obsDate(r), "ge2012", s.now) }},
		{"Patient", enc("address-city", "boston", "_sort", "birthdate", "_total", "accurate"), boston},
		{"Condition", enc("code", "15777000", "_total", "accurate"), func(r *res) bool { return tokenMatch(codings(r, "code"), "", "15777000") }},
	} {
		c := s.add("total", q.typ, q.q, q.f)
		c.pager = true
		if strings.Contains(q.q, "_sort") {
			c.order = dateOrder(pBirth, false)
		}
	}
}

func keyList(rs []*res) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.key()
	}
	return out
}
