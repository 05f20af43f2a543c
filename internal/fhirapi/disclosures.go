package fhirapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/fhir"
)

// The accounting of disclosures (45 CFR 164.528): for up to six years
// back, each disclosure of the patient's data, with its date, recipient,
// description and purpose. What counts is written in docs/audit.md
// ("Accounting of disclosures"); in short, an event is a disclosure when
// data was released (a successful, permitted read, search, history,
// $everything or export that named the patient) for a purpose other than
// treatment, payment or health care operations, to someone other than the
// patient or their representative.

// accountingPeriod is how far back an accounting reaches (164.528(a)(3)).
const accountingYears = 6

// tpoPurposes are the purposes of use (v3 ActReason) that are treatment,
// payment or health care operations, or a disclosure to the individual,
// their representative, or people involved in their care, or the
// facility directory: all excluded from the accounting by
// 164.528(a)(1)(i), (ii), (v) and (vi).
var tpoPurposes = []string{
	"TREAT", "ETREAT", "CAREMGT", "POPHLTH", "HPAYMT", "CLMATTCH", "COVAUTH", "COVERAGE", "ELIGDTRM", "ELIGVER",
	"HOPERAT", "PATADMIN", "PATSFTY", "HQUALIMP", "HSYSADMIN", "MEMADMIN", "TRAIN",
	"PATRQT", "FAMRQT", "PWATRNY", "HDIRECT",
}

// disclosingInteractions release data to the caller.
var disclosingInteractions = []string{"read", "vread", "search-type", "search-system", "search-compartment",
	"history-instance", "history-type", "history-system", "everything", "export", "export-file", "operation"}

// purposeNames are printed beside the codes in the text report.
var purposeNames = map[string]string{
	"HRESCH": "research", "PUBHLTH": "public health", "HLEGAL": "legal", "JUDICIAL": "judicial proceeding",
	"LAW": "law enforcement", "HMARKT": "marketing", "HSYSADMIN": "system administration", "HDM": "disaster management",
	"DISASTER": "disaster relief", "THREAT": "serious threat", "HCOMPL": "compliance", "HACCRED": "accreditation",
	"HOPERAT": "operations", "TREAT": "treatment", "ETREAT": "emergency treatment", "HPAYMT": "payment",
}

// disclosure is one line of the accounting.
type disclosure struct {
	Index       uint64   `json:"index"` // the event's leaf index (AuditEvent id; proof via /fhir/_audit/proof/inclusion)
	Date        string   `json:"date"`
	Recipient   string   `json:"recipient"` // the user the data was released to
	Roles       []string `json:"roles,omitempty"`
	Client      string   `json:"client,omitempty"` // the client application it went through
	Description string   `json:"description"`      // interaction and resource types
	Purpose     string   `json:"purpose"`
	BreakGlass  bool     `json:"breakGlass,omitempty"`
}

// disclosureHeader is the first line of the NDJSON accounting.
type disclosureHeader struct {
	Patient     string `json:"patient"`
	From        string `json:"from"`
	To          string `json:"to"`
	Scanned     uint64 `json:"scanned"` // events considered: leaves [0, scanned)
	Disclosures int    `json:"disclosures"`
}

func (a *API) disclosureRoutes(h func(string, func(*call) error)) {
	h("GET /fhir/Patient/{id}/$disclosures", a.disclosures)
}

// disclosures serves GET /fhir/Patient/{id}/$disclosures: the accounting
// of disclosures as NDJSON (a header line, then one line per disclosure,
// oldest first), or with _format=text as a printable report. Privacy
// officers and the log's other readers may ask for any patient; a patient
// for their own record (the audit-read decision, as for $access-report).
func (a *API) disclosures(c *call) error {
	c.ev.Interaction, c.ev.Action = "disclosures", "E"
	id := c.r.PathValue("id")
	if !fhir.IsID(id) {
		return errorf(http.StatusBadRequest, "value", "invalid Patient id")
	}
	text := false
	for k, vs := range c.r.URL.Query() {
		switch {
		case k == "_format" && len(vs) == 1 && (vs[0] == "text" || vs[0] == "text/plain"):
			text = true
		case k == "_format" && len(vs) == 1 && (vs[0] == "json" || vs[0] == "application/x-ndjson"):
		default:
			return errorf(http.StatusBadRequest, "not-supported", "$disclosures takes only _format=text or _format=json")
		}
	}
	if err := a.decide(c, actAuditRead, "AuditEvent", "", id); err != nil {
		return err
	}
	c.ev.Patients = []string{id}
	ctx, cancel := context.WithTimeout(c.ctx, reportTimeout)
	defer cancel()
	to := time.Now().UTC()
	from := to.AddDate(-accountingYears, 0, 0)
	var lines []disclosure
	res, err := a.Audit.Prover().FindLeaves(ctx, audit.LeafQuery{Patient: id, From: from}, func(i uint64, leaf []byte) bool {
		d, ok := disclosureOf(leaf)
		if ok {
			d.Index = i
			lines = append(lines, d)
		}
		return ok
	})
	if errors.Is(err, context.DeadlineExceeded) && c.ctx.Err() == nil {
		return errorf(http.StatusServiceUnavailable, "too-costly", "the accounting took too long to compute")
	}
	if err != nil {
		return err
	}
	hdr := disclosureHeader{Patient: id, From: from.Format(time.RFC3339), To: to.Format(time.RFC3339), Scanned: res.Size, Disclosures: len(lines)}
	if err := a.record(c); err != nil {
		return err
	}
	c.w.Header().Set("Cache-Control", "no-store")
	if text {
		c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		c.w.WriteHeader(http.StatusOK)
		writeDisclosureText(c.w, hdr, lines)
		return nil
	}
	c.w.Header().Set("Content-Type", "application/x-ndjson")
	c.w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(c.w)
	enc.Encode(hdr)
	for _, l := range lines {
		enc.Encode(l)
	}
	return nil
}

// disclosureOf reads an event leaf; ok is true if it is a disclosure.
func disclosureOf(leaf []byte) (disclosure, bool) {
	var ae leafEvent
	if json.Unmarshal(leaf, &ae) != nil || ae.Outcome != audit.Success || len(ae.Subtype) == 0 {
		return disclosure{}, false
	}
	d := disclosure{Date: ae.Recorded}
	inter := ae.Subtype[0].Code
	if !slices.Contains(disclosingInteractions, inter) {
		return disclosure{}, false
	}
	permitted := false
	for _, x := range ae.Extension {
		switch x.URL {
		case "urn:phivault:decision":
			permitted = x.ValueCode == "permit"
		case "urn:phivault:break-glass":
			d.BreakGlass = x.ValueBoolean
		}
	}
	if !permitted {
		return disclosure{}, false
	}
	d.Recipient, d.Roles, d.Purpose, d.Client = ae.actors()
	// To the individual (164.528(a)(1)(ii)) or for treatment, payment or
	// operations ((a)(1)(i)): not accounted. A purpose left out is taken
	// as treatment (the API's default), so it is not accounted either.
	if slices.Contains(d.Roles, "patient") || d.Purpose == "" || slices.Contains(tpoPurposes, d.Purpose) {
		return disclosure{}, false
	}
	var types []string
	n := 0
	for _, e := range ae.Entity {
		if e.Type.Code == "1" && e.Role.Code == "1" || e.What.Reference == "" {
			continue
		}
		n++
		if t, _, _ := strings.Cut(e.What.Reference, "/"); !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	d.Description = inter
	if n > 0 {
		d.Description = fmt.Sprintf("%s of %s (%d resource%s)", inter, strings.Join(types, ", "), n, map[bool]string{true: "s"}[n > 1])
	}
	return d, true
}

// writeDisclosureText prints the accounting for the patient.
func writeDisclosureText(w http.ResponseWriter, hdr disclosureHeader, lines []disclosure) {
	fmt.Fprintf(w, "ACCOUNTING OF DISCLOSURES OF PROTECTED HEALTH INFORMATION (45 CFR 164.528)\n\n")
	fmt.Fprintf(w, "Patient:  %s\n", printable(hdr.Patient))
	fmt.Fprintf(w, "Period:   %s to %s (six years)\n", hdr.From[:10], hdr.To[:10])
	fmt.Fprintf(w, "Prepared: %s UTC\n\n", hdr.To[:16])
	if len(lines) == 0 {
		fmt.Fprintf(w, "No disclosures to account for in this period.\n")
	}
	for k, l := range lines {
		date := l.Date
		if t, err := time.Parse(time.RFC3339Nano, l.Date); err == nil {
			date = t.UTC().Format("2006-01-02 15:04 UTC")
		}
		who := printable(l.Recipient)
		if len(l.Roles) > 0 {
			who += " (" + printable(strings.Join(l.Roles, ", ")) + ")"
		}
		if l.Client != "" {
			who += " via application " + printable(l.Client)
		}
		purpose := printable(l.Purpose)
		if n, ok := purposeNames[l.Purpose]; ok {
			purpose += " (" + n + ")"
		}
		fmt.Fprintf(w, "%d. %s\n   Recipient:   %s\n   Purpose:     %s\n   Description: %s\n", k+1, date, who, purpose, printable(l.Description))
		if l.BreakGlass {
			fmt.Fprintf(w, "   Emergency access (break-the-glass)\n")
		}
		fmt.Fprintf(w, "   Audit record: AuditEvent/%d\n\n", l.Index)
	}
	fmt.Fprintf(w, "%d disclosure(s). Each entry is a record of the tamper-evident audit log; its inclusion\n", len(lines))
	fmt.Fprintf(w, "proof can be checked against a signed checkpoint with the log's public key.\n")
}

// printable keeps a recorded value from carrying control characters into
// the printed report.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}
