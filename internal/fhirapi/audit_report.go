package fhirapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/fhir"
)

// reportTimeout bounds the computation of an access report. The report
// reads the patient's postings in the audit log's leaf index and the tail
// of the log not integrated yet, so its cost follows the patient's
// accesses, not the size of the log.
const reportTimeout = 20 * time.Second

// reportHeader is the first line of an access report.
type reportHeader struct {
	Patient    string `json:"patient"`
	Checkpoint string `json:"checkpoint,omitempty"` // the signed checkpoint the proofs are against
	TreeSize   uint64 `json:"treeSize"`             // its size
	Scanned    uint64 `json:"scanned"`              // leaves scanned: [0, scanned)
	Events     int    `json:"events"`
}

// reportLine is one access to the patient's record: who, when, what, why,
// outcome, and where it is in the log with its inclusion proof. Leaf is
// the exact leaf bytes (base64), which the proof commits to.
type reportLine struct {
	Index       uint64   `json:"index"`
	Recorded    string   `json:"recorded"`
	Who         string   `json:"who"`
	Roles       []string `json:"roles,omitempty"`
	Client      string   `json:"client,omitempty"`
	Interaction string   `json:"interaction"`
	Action      string   `json:"action"`
	What        []string `json:"what,omitempty"`
	Why         string   `json:"why,omitempty"`
	Outcome     string   `json:"outcome"`
	Decision    string   `json:"decision"`
	BreakGlass  bool     `json:"breakGlass,omitempty"`
	Leaf        []byte   `json:"leaf"`
	Proof       [][]byte `json:"proof,omitempty"`
	Pending     bool     `json:"pending,omitempty"` // appended after the checkpoint: no proof yet
}

// accessReport serves GET /fhir/Patient/{id}/$access-report as NDJSON: a
// header line, then one line per audit event that names the patient, in
// log order, each with an inclusion proof against the latest signed
// checkpoint (events newer than it are marked pending).
func (a *API) accessReport(c *call) error {
	c.ev.Interaction, c.ev.Action = "access-report", "E"
	id := c.r.PathValue("id")
	if !fhir.IsID(id) {
		return errorf(http.StatusBadRequest, "value", "invalid Patient id")
	}
	if err := a.decide(c, actAuditRead, "AuditEvent", "", id); err != nil {
		return err
	}
	c.ev.Patients = []string{id}
	ctx, cancel := context.WithTimeout(c.ctx, reportTimeout)
	defer cancel()
	p := a.Audit.Prover()
	hdr := reportHeader{Patient: id}
	cp, err := p.LatestCheckpoint(ctx)
	switch {
	case errors.Is(err, audit.ErrNoCheckpoint):
	case err != nil:
		return err
	default:
		if hdr.TreeSize, err = checkpointSize(cp); err != nil {
			return err
		}
		hdr.Checkpoint = string(cp)
	}
	lines, size, err := patientLines(ctx, p, id, hdr.TreeSize)
	if errors.Is(err, context.DeadlineExceeded) && c.ctx.Err() == nil {
		return errorf(http.StatusServiceUnavailable, "too-costly", "the access report took too long to compute")
	}
	if err != nil {
		return err
	}
	hdr.Scanned, hdr.Events = size, len(lines)
	if err := a.record(c); err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "application/x-ndjson")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(c.w)
	enc.Encode(hdr)
	for _, l := range lines {
		enc.Encode(l)
	}
	return nil
}

// patientLines returns the report lines of every event naming patient, in
// log order, with inclusion proofs in the tree of size treeSize for those
// within it (the others pending), and the log size considered.
func patientLines(ctx context.Context, p *audit.Prover, patient string, treeSize uint64) ([]reportLine, uint64, error) {
	var lines []reportLine
	res, err := p.FindLeaves(ctx, audit.LeafQuery{Patient: patient}, func(i uint64, leaf []byte) bool {
		l, ok := decodeLine(leaf, patient)
		if ok {
			l.Index = i
			lines = append(lines, l)
		}
		return ok
	})
	if err != nil {
		return nil, 0, err
	}
	var proved []uint64
	for _, l := range lines {
		if l.Index < treeSize {
			proved = append(proved, l.Index)
		}
	}
	proofs, err := p.InclusionProofs(ctx, proved, treeSize)
	if err != nil {
		return nil, 0, err
	}
	for k := range lines {
		if k < len(proofs) {
			lines[k].Proof = proofs[k]
		} else {
			lines[k].Pending = true
		}
	}
	return lines, res.Size, nil
}

// leafEvent is the part of an AuditEvent leaf (audit.Event.Leaf) that the
// access report and the accounting of disclosures read back.
type leafEvent struct {
	Subtype  []struct{ Code string }
	Action   string
	Outcome  string
	Recorded string
	Agent    []struct {
		Who struct {
			Identifier struct{ System, Value string }
		}
		Role         []struct{ Coding []struct{ Code string } }
		PurposeOfUse []struct{ Coding []struct{ Code string } }
	}
	Entity []struct {
		What struct{ Reference string }
		Type struct{ Code string }
		Role struct{ Code string }
	}
	Extension []struct {
		URL          string
		ValueCode    string
		ValueBoolean bool
	}
}

// actors returns whom the event names as acting: the user (the last user
// agent's id, the roles of all of them, the last purpose of use) and the
// client application.
func (ae *leafEvent) actors() (user string, roles []string, purpose, client string) {
	for _, ag := range ae.Agent {
		switch ag.Who.Identifier.System {
		case "urn:phivault:user":
			user = ag.Who.Identifier.Value
			for _, r := range ag.Role {
				for _, cd := range r.Coding {
					roles = append(roles, cd.Code)
				}
			}
			for _, pu := range ag.PurposeOfUse {
				for _, cd := range pu.Coding {
					purpose = cd.Code
				}
			}
		case "urn:phivault:client":
			client = ag.Who.Identifier.Value
		}
	}
	return user, roles, purpose, client
}

// decodeLine reads an AuditEvent leaf; ok is false unless it names the
// patient as a patient entity (role 1).
func decodeLine(leaf []byte, patient string) (reportLine, bool) {
	var ae leafEvent
	if err := json.Unmarshal(leaf, &ae); err != nil {
		return reportLine{}, false
	}
	l := reportLine{Action: ae.Action, Outcome: ae.Outcome, Recorded: ae.Recorded, Leaf: leaf}
	if len(ae.Subtype) > 0 {
		l.Interaction = ae.Subtype[0].Code
	}
	l.Who, l.Roles, l.Why, l.Client = ae.actors()
	named := false
	for _, e := range ae.Entity {
		switch {
		case e.Type.Code == "1" && e.Role.Code == "1":
			named = named || e.What.Reference == "Patient/"+patient
		case e.What.Reference != "":
			l.What = append(l.What, e.What.Reference)
		}
	}
	for _, x := range ae.Extension {
		switch x.URL {
		case "urn:phivault:decision":
			l.Decision = x.ValueCode
		case "urn:phivault:break-glass":
			l.BreakGlass = x.ValueBoolean
		}
	}
	return l, named
}
