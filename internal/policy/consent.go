package policy

import (
	"context"
	"strings"
	"time"
)

// lookup fills the facts that need stored data: the care relationship and
// the patient's consents.
func (e *Engine) lookup(ctx context.Context, r Request, now time.Time, f *facts) error {
	if pr := r.Principal.Practitioner; pr != "" {
		rels, err := e.facts.Relationships(ctx, pr, r.Patient)
		if err != nil {
			return err
		}
		f.relationship = len(rels) > 0
	}
	consents, err := e.facts.Consents(ctx, r.Patient)
	if err != nil {
		return err
	}
	// Within one Consent the last matching provision decides: Facts lists
	// a Consent's nested provisions after the one they refine, so an
	// exception ("deny all, permit these"; "permit all, deny these")
	// overrides its parent. Across Consents any deciding deny denies.
	var order []string
	last := map[string]Consent{}
	for _, c := range consents {
		if !consentCovers(c, r, f.purpose, now) {
			continue
		}
		if _, seen := last[c.ID]; !seen {
			order = append(order, c.ID)
		}
		last[c.ID] = c
	}
	for _, id := range order {
		c := last[id]
		switch {
		case !c.Permit:
			f.consentDeny = append(f.consentDeny, id)
		case len(c.Purpose) > 0 && f.purpose == "HRESCH": // covers checked the purpose
			f.researchConsent = true
		}
	}
	return nil
}

// consentCovers reports whether provision c applies to request r from the
// practitioner/department at now with the normalized purpose.
func consentCovers(c Consent, r Request, purpose string, now time.Time) bool {
	if !c.Start.IsZero() && now.Before(c.Start) {
		return false
	}
	if !c.End.IsZero() && !now.Before(c.End) {
		return false
	}
	if len(c.Actors) > 0 && !actorMatches(c.Actors, r.Principal) {
		return false
	}
	if len(c.Classes) > 0 && !contains(c.Classes, r.Type) {
		return false
	}
	if len(c.Labels) > 0 && !intersects(c.Labels, r.Labels) && !intersects(c.Labels, r.Category) {
		return false
	}
	if len(c.Purpose) > 0 {
		ok := false
		for _, cp := range c.Purpose {
			if normalizePurpose(cp) == purpose {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// actorMatches reports whether one of the consent's actor references names
// the caller: its Practitioner, its department's Organization, or (for
// patients and related persons acting for them) its Patient.
func actorMatches(actors []string, p Principal) bool {
	for _, a := range actors {
		typ, id, ok := strings.Cut(a, "/")
		if !ok || id == "" {
			continue
		}
		switch {
		case typ == "Practitioner" && id == p.Practitioner,
			typ == "Organization" && id == p.Department,
			typ == "Patient" && id == p.Patient && p.Has("patient"):
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if contains(b, x) {
			return true
		}
	}
	return false
}
