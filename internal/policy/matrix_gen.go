//go:build ignore

// matrix_gen writes testdata/matrix.csv, the authorization matrix: one row
// per cell (role, action, resource kind, relationship, consent,
// break-the-glass, purpose) with the expected decision. Run it with
// `go generate ./internal/policy` after changing the intended policy below.
//
// The expected column comes from the rules in expect, written from the
// access-control requirements (issue 6) in plain Go, independently of the
// Cedar policies; the engine is never consulted. If the engine and these
// rules disagree, the matrix test fails and one of them is wrong.
//
// Every cell assumes: workforce users are trained, logged in with
// password+TOTP (MFA true) and act as a Practitioner; patients log in with
// a password and are Patient "p1" when the relationship is "self" (another
// patient otherwise); devices authenticate by mTLS, vendors by a SMART
// token without scopes, operators by local-cli. The target patient is "p1";
// resource kinds are Observation (patient-clinical), Patient
// (patient-demographics), Practitioner (reference), Claim (financial),
// the audit log (audit-log: AuditEvent, the patient's access report when
// the relationship is "self"; audit-search: AuditEvent search, never a
// patient's; disclosures: a patient's accounting of disclosures, their own
// when the relationship is "self"), the monitoring cases (monitoring-case: the
// live detector's cases of alerts, decided as the audit log) and
// configuration (the admin action).
package main

import (
	"encoding/csv"
	"flag"
	"log"
	"os"
	"slices"
)

var roles = []string{"physician", "nurse", "front-desk", "billing", "researcher", "privacy-officer",
	"security-officer", "administrator", "auditor", "patient", "device", "vendor", "operator"}

type cell struct {
	role, action, kind, rel, consent, bg, purpose string
}

// expect is the intended policy, in plain words:
func expect(c cell) bool {
	in := func(s string, set ...string) bool { return slices.Contains(set, s) }
	// The local operator holds the data directory and its key: everything.
	if c.role == "operator" {
		return true
	}
	// Users, keys and configuration: administrators and security officers.
	if c.action == "admin" {
		return in(c.role, "administrator", "security-officer")
	}
	// The audit log: privacy and security officers and auditors; a patient
	// reads their own access report.
	if c.action == "audit-read" {
		return in(c.role, "privacy-officer", "security-officer", "auditor") || c.role == "patient" && c.rel == "self"
	}
	reading := in(c.action, "read", "search")
	// Reference data: read by every role that works with records, patients
	// and vendors; maintained (not deleted) by administrators.
	if c.kind == "reference" {
		if reading {
			return in(c.role, "physician", "nurse", "front-desk", "billing", "researcher", "patient", "vendor", "administrator")
		}
		return in(c.action, "create", "update") && c.role == "administrator"
	}
	// Patient data from here on.
	breakGlass := c.bg == "active" && in(c.role, "physician", "nurse", "administrator")
	// A Consent that denies everyone stops disclosure (read, search,
	// export), except to the patient and under break-the-glass.
	if c.consent == "deny" && in(c.action, "read", "search", "export") && !breakGlass && !(c.role == "patient" && c.rel == "self") {
		return false
	}
	// Break-the-glass reads any patient's data.
	if breakGlass && reading {
		return true
	}
	switch c.role {
	case "physician", "nurse": // their patients, for treatment; never delete
		return c.rel == "careteam" && in(c.purpose, "TREAT", "ETREAT") && in(c.action, "read", "search", "create", "update")
	case "front-desk": // demographics (and scheduling, coverage) of anyone; nothing clinical
		return c.kind == "patient-demographics" && in(c.action, "read", "search", "create", "update")
	case "billing": // the patient and financial records, for payment, read-only
		return reading && c.purpose == "HPAYMT" && in(c.kind, "patient-demographics", "financial")
	case "researcher": // for research, where the patient's consent permits it, read-only
		return reading && c.purpose == "HRESCH" && c.consent == "permit-research"
	case "patient": // their own compartment, read-only
		return reading && c.rel == "self"
	case "device": // submit observations
		return c.kind == "patient-clinical" && in(c.action, "create", "update")
	}
	return false // administrators, officers, auditors, vendors: no patient data
}

// natural is the purpose each role usually declares.
func natural(role string) string {
	switch role {
	case "billing":
		return "HPAYMT"
	case "researcher":
		return "HRESCH"
	}
	return "TREAT"
}

func cells() []cell {
	var out []cell
	for _, role := range roles {
		rels := []string{"none", "careteam"}
		if role == "patient" {
			rels = []string{"none", "self"}
		}
		for _, a := range []string{"read", "search", "create", "update", "delete", "export"} {
			for _, bg := range []string{"no", "active"} {
				out = append(out, cell{role, a, "reference", "none", "none", bg, natural(role)})
			}
			for _, kind := range []string{"patient-clinical", "patient-demographics", "financial"} {
				for _, rel := range rels {
					if a == "read" {
						// Every purpose without consent or break-glass; every
						// consent and break-glass state with the role's purpose.
						for _, p := range []string{"TREAT", "ETREAT", "HPAYMT", "HRESCH"} {
							out = append(out, cell{role, a, kind, rel, "none", "no", p})
						}
						for _, con := range []string{"none", "deny", "permit-research"} {
							for _, bg := range []string{"no", "active", "expired"} {
								if con == "none" && bg == "no" {
									continue
								}
								out = append(out, cell{role, a, kind, rel, con, bg, natural(role)})
							}
						}
						continue
					}
					for _, con := range []string{"none", "deny"} {
						for _, bg := range []string{"no", "active"} {
							out = append(out, cell{role, a, kind, rel, con, bg, natural(role)})
						}
					}
				}
			}
		}
		out = append(out, cell{role, "audit-read", "audit-log", "none", "none", "no", "HOPERAT"})
		out = append(out, cell{role, "audit-read", "monitoring-case", "none", "none", "no", "HOPERAT"})
		out = append(out, cell{role, "audit-read", "audit-search", "none", "none", "no", "HOPERAT"})
		out = append(out, cell{role, "audit-read", "disclosures", "none", "none", "no", "HOPERAT"})
		if role == "patient" {
			out = append(out, cell{role, "audit-read", "audit-log", "self", "none", "no", "HOPERAT"})
			out = append(out, cell{role, "audit-read", "disclosures", "self", "none", "no", "HOPERAT"})
		}
		for _, bg := range []string{"no", "active"} {
			out = append(out, cell{role, "admin", "configuration", "none", "none", bg, "HOPERAT"})
		}
	}
	return out
}

func main() {
	out := flag.String("o", "testdata/matrix.csv", "the file to write")
	flag.Parse()
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	w := csv.NewWriter(f)
	w.Write([]string{"role", "action", "kind", "relationship", "consent", "break_glass", "purpose", "expected"})
	for _, c := range cells() {
		want := "deny"
		if expect(c) {
			want = "allow"
		}
		w.Write([]string{c.role, c.action, c.kind, c.rel, c.consent, c.bg, c.purpose, want})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}
