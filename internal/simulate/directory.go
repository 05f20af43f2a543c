package simulate

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// UserSystem is the identifier system that names a phivault user.
const UserSystem = "urn:phivault:user"

type obj = map[string]any

func ref(s string) obj { return obj{"reference": s} }

func humanName(family, given string) []obj {
	return []obj{{"family": family, "given": []string{given}}}
}

func (a address) fhir() []obj {
	return []obj{{"line": []string{a.line()}, "city": "Springfield", "postalCode": a.code()}}
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// writeDirectory writes the FHIR resources, one JSON object per line.
func (w *world) writeDirectory(out io.Writer) error {
	bw := bufio.NewWriterSize(out, 1<<16)
	enc := json.NewEncoder(bw)
	var err error
	put := func(v obj) {
		if err == nil {
			err = enc.Encode(v)
		}
	}
	for d, dep := range departments {
		put(obj{"resourceType": "Location", "id": fmt.Sprintf("dept-%02d", d), "name": dep.name})
	}
	for _, u := range w.users {
		put(obj{"resourceType": "Practitioner", "id": "pr-" + u.id,
			"identifier": []obj{{"system": UserSystem, "value": u.id}},
			"name":       humanName(u.family, u.given), "birthDate": u.birth, "address": u.addr.fhir(),
			"telecom": []obj{{"system": "email", "value": u.id + "@hospital.example"}}})
		put(obj{"resourceType": "PractitionerRole", "id": "prr-" + u.id, "active": !u.dormant || u.off%2 == 0, // half the unused accounts were never disabled
			"practitioner": ref("Practitioner/pr-" + u.id),
			"code":         []obj{{"text": u.role, "coding": []obj{{"system": "urn:phivault:role", "code": u.role}}}},
			"specialty":    []obj{{"text": departments[u.dept].name}},
			"location":     []obj{{"reference": fmt.Sprintf("Location/dept-%02d", u.dept), "display": departments[u.dept].name}}})
	}
	for _, p := range w.patients {
		ids := []obj{{"system": "urn:hospital:mrn", "value": "MRN" + p.id[1:]}}
		if p.employee >= 0 && p.byIdentifier {
			ids = append(ids, obj{"system": UserSystem, "value": w.users[p.employee].id})
		}
		res := obj{"resourceType": "Patient", "id": p.id, "identifier": ids,
			"name": humanName(p.family, p.given), "birthDate": p.birth, "address": p.addr.fhir()}
		if p.security != "" {
			res["meta"] = obj{"security": []obj{{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": p.security}}}
		}
		if p.deceased {
			res["deceasedDateTime"] = ts(w.cfg.Start.AddDate(0, -2, 0))
		}
		put(res)
	}
	for _, e := range w.encs {
		w.putEncounter(put, &e)
	}
	if err == nil {
		err = bw.Flush()
	}
	return err
}

func (w *world) putEncounter(put func(obj), e *encounter) {
	pt := "Patient/" + w.patients[e.patient].id
	id := fmt.Sprintf("%07d", e.id)
	var parts []obj
	for _, ui := range e.participants {
		parts = append(parts, obj{"individual": ref("Practitioner/pr-" + w.users[ui].id)})
	}
	loc := obj{"reference": fmt.Sprintf("Location/dept-%02d", e.dept), "display": departments[e.dept].name}
	status := "finished"
	if e.end.After(w.date(w.cfg.Days)) {
		status = "in-progress"
	}
	put(obj{"resourceType": "Encounter", "id": "e" + id, "status": status,
		"class":   obj{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
		"subject": ref(pt), "participant": parts, "period": obj{"start": ts(e.start), "end": ts(e.end)},
		"location": []obj{{"location": loc}}})
	doc := "Practitioner/pr-" + w.users[e.participants[0]].id
	if len(e.careTeam) > 0 {
		var members []obj
		for _, ui := range e.careTeam {
			members = append(members, obj{"member": ref("Practitioner/pr-" + w.users[ui].id)})
		}
		put(obj{"resourceType": "CareTeam", "id": "ct" + id, "status": "active", "subject": ref(pt),
			"period": obj{"start": ts(e.start), "end": ts(e.end)}, "participant": members})
	}
	if e.order >= 0 {
		put(obj{"resourceType": "ServiceRequest", "id": "sr" + id, "status": "active", "intent": "order",
			"subject": ref(pt), "requester": ref(doc), "authoredOn": ts(e.orderAt),
			"code":              obj{"text": "consult " + departments[e.order].name},
			"locationReference": []obj{{"reference": fmt.Sprintf("Location/dept-%02d", e.order), "display": departments[e.order].name}}})
	}
	if e.medOrder {
		put(obj{"resourceType": "MedicationRequest", "id": "mr" + id, "status": "active", "intent": "order",
			"subject": ref(pt), "requester": ref(doc), "authoredOn": ts(e.start.Add(time.Hour)),
			"medicationCodeableConcept": obj{"text": "medication"}})
	}
	if !e.appt.IsZero() {
		put(obj{"resourceType": "Appointment", "id": "ap" + id, "status": "booked",
			"start": ts(e.appt), "end": ts(e.appt.Add(30 * time.Minute)),
			"participant": []obj{{"actor": ref(pt), "status": "accepted"}, {"actor": ref(doc), "status": "accepted"}}})
	}
}
