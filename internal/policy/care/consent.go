package care

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/policy"
)

// maxProvisionDepth bounds the nesting of Consent provisions read.
const maxProvisionDepth = 8

// provision is an R4 Consent.provision.
type provision struct {
	Type   string `json:"type"`
	Period period `json:"period"`
	Actor  []struct {
		Reference reference `json:"reference"`
	} `json:"actor"`
	SecurityLabel []coding    `json:"securityLabel"`
	Purpose       []coding    `json:"purpose"`
	Class         []coding    `json:"class"`
	Code          []concept   `json:"code"`
	Provision     []provision `json:"provision"`
}

// Consents implements policy.Facts: the provisions of the patient's
// active Consents of scope patient-privacy, flattened in document order
// (each Consent's root provision, then its nested ones depth first). A
// nested provision is an exception within its parent: each constraint it
// leaves empty (actors, classes, labels, purposes, period) is its
// parent's, and one it sets replaces the parent's; without a type it
// takes its parent's. A root provision without a type decides nothing and
// is left out (its constraints still pass to its nested provisions). A
// Consent without provisions contributes nothing. Labels hold both
// provision.securityLabel and provision.code codes.
func (f *Facts) Consents(ctx context.Context, patient string) ([]policy.Consent, error) {
	if !fhir.IsID(patient) {
		return nil, nil
	}
	return cached(f, "consent\x00"+patient, func() ([]policy.Consent, error) {
		ctx := policy.WithPrincipal(ctx, System)
		es, err := f.find(ctx, "Consent", url.Values{"patient": {"Patient/" + patient}, "status": {"active"}})
		if err != nil {
			return nil, err
		}
		var out []policy.Consent
		for _, e := range es {
			var c struct {
				Status    string     `json:"status"`
				Scope     concept    `json:"scope"`
				Patient   reference  `json:"patient"`
				Provision *provision `json:"provision"`
			}
			if json.Unmarshal(e.Body, &c) != nil || c.Status != "active" || c.Provision == nil ||
				!hasCode([]concept{c.Scope}, "patient-privacy") || c.Patient.local() != "Patient/"+patient {
				continue
			}
			out = flatten(out, e.ID, *c.Provision, policy.Consent{ID: e.ID}, 0)
		}
		return out, nil
	})
}

// flatten appends p (narrowing parent) and its nested provisions to out.
func flatten(out []policy.Consent, id string, p provision, parent policy.Consent, depth int) []policy.Consent {
	if depth > maxProvisionDepth {
		return out
	}
	c := policy.Consent{ID: id, Permit: parent.Permit}
	switch p.Type {
	case "permit":
		c.Permit = true
	case "deny":
		c.Permit = false
	}
	for _, a := range p.Actor {
		if r := a.Reference.local(); r != "" {
			c.Actors = append(c.Actors, r)
		}
	}
	for _, cd := range p.Class {
		if cd.Code != "" {
			c.Classes = append(c.Classes, cd.Code)
		}
	}
	for _, cd := range p.SecurityLabel {
		if cd.Code != "" {
			c.Labels = append(c.Labels, cd.Code)
		}
	}
	for _, cc := range p.Code {
		for _, cd := range cc.Coding {
			if cd.Code != "" {
				c.Labels = append(c.Labels, cd.Code)
			}
		}
	}
	for _, cd := range p.Purpose {
		if cd.Code != "" {
			c.Purpose = append(c.Purpose, cd.Code)
		}
	}
	c.Start, c.End = p.Period.bounds()
	if c.Actors == nil {
		c.Actors = parent.Actors
	}
	if c.Classes == nil {
		c.Classes = parent.Classes
	}
	if c.Labels == nil {
		c.Labels = parent.Labels
	}
	if c.Purpose == nil {
		c.Purpose = parent.Purpose
	}
	if c.Start.IsZero() {
		c.Start = parent.Start
	}
	if c.End.IsZero() {
		c.End = parent.End
	}
	if p.Type != "" || depth > 0 {
		out = append(out, c)
	}
	for _, n := range p.Provision {
		out = flatten(out, id, n, c, depth+1)
	}
	return out
}
