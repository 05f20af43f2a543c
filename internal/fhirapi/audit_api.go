package fhirapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/store"
)

// actAuditRead is the action of reading the audit log (checkpoints,
// leaves, proofs, access reports). It is its own action so that a policy
// can allow auditors and privacy officers to read the log without
// allowing them patient data or operator actions. (The bootstrap decision
// point allows administrators everything and nobody else anything.)
//
// TODO: move to package policy with the Cedar policies.
const actAuditRead policy.Action = "audit-read"

// auditRoutes registers the audit log's read API under /fhir/_audit/ (the
// FHIR tree is where the server authenticates callers) and the patient
// access report. Every request is decided and audited like any other:
// reading the log is itself an access worth recording.
//
//	GET /fhir/_audit/checkpoint                        latest signed checkpoint (text/plain, C2SP signed note)
//	GET /fhir/_audit/leaf?index=N                      leaf N, byte for byte (hash it to check a proof)
//	GET /fhir/_audit/proof/inclusion?index=N[&size=M]  inclusion proof of leaf N in the tree of size M (default: latest checkpoint)
//	GET /fhir/_audit/proof/consistency?from=A&to=B     consistency proof between the trees of sizes A and B
//	GET /fhir/Patient/{id}/$access-report              every event naming the patient, with proofs (NDJSON)
//	GET /fhir/AuditEvent?...                           AuditEvent search (audit_search.go)
//	GET /fhir/Patient/{id}/$disclosures                accounting of disclosures (disclosures.go)
func (a *API) auditRoutes(h func(string, func(*call) error)) {
	h("GET /fhir/_audit/checkpoint", a.auditCheckpoint)
	h("GET /fhir/_audit/leaf", a.auditLeaf)
	h("GET /fhir/_audit/proof/inclusion", a.auditInclusion)
	h("GET /fhir/_audit/proof/consistency", a.auditConsistency)
	h("GET /fhir/Patient/{id}/$access-report", a.accessReport)
	a.auditSearchRoutes(h)
	a.disclosureRoutes(h)
}

// proofJSON is the body of a proof answer: the RFC 9162 proof hashes,
// base64 (standard, padded), in the order audit.VerifyInclusion and
// audit.VerifyConsistency (and any RFC 6962 library) take them.
type proofJSON struct {
	Index  *uint64  `json:"index,omitempty"`
	Size   uint64   `json:"size,omitempty"`
	From   uint64   `json:"from,omitempty"`
	To     uint64   `json:"to,omitempty"`
	Hashes [][]byte `json:"hashes"`
}

func (a *API) auditCheckpoint(c *call) error {
	c.ev.Interaction, c.ev.Action = "audit-checkpoint", "R"
	if err := a.decide(c, actAuditRead, "AuditEvent", "", ""); err != nil {
		return err
	}
	cp, err := a.Audit.Prover().LatestCheckpoint(c.ctx)
	if errors.Is(err, audit.ErrNoCheckpoint) {
		return errorf(http.StatusNotFound, "not-found", "no checkpoint has been signed yet")
	}
	if err != nil {
		return err
	}
	if err := a.record(c); err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(cp)
	return nil
}

func (a *API) auditLeaf(c *call) error {
	c.ev.Interaction, c.ev.Action = "audit-leaf", "R"
	idx, err := uintParam(c, "index", true)
	if err != nil {
		return err
	}
	if err := a.decide(c, actAuditRead, "AuditEvent", strconv.FormatUint(idx, 10), ""); err != nil {
		return err
	}
	leaf, err := a.Audit.Prover().Leaf(c.ctx, idx)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "not-found", "no audit leaf at that index")
	}
	if err != nil {
		return err
	}
	if err := a.record(c); err != nil {
		return err
	}
	c.w.Header().Set("Cache-Control", "no-store")
	writeBody(c.w, http.StatusOK, leaf)
	return nil
}

func (a *API) auditInclusion(c *call) error {
	c.ev.Interaction, c.ev.Action = "audit-proof", "R"
	idx, err := uintParam(c, "index", true)
	if err != nil {
		return err
	}
	size, err := uintParam(c, "size", false)
	if err != nil {
		return err
	}
	if err := a.decide(c, actAuditRead, "AuditEvent", "", ""); err != nil {
		return err
	}
	p := a.Audit.Prover()
	if size == 0 {
		if size, err = latestSize(c, p); err != nil {
			return err
		}
	}
	if idx >= size {
		return errorf(http.StatusBadRequest, "value", "index must be below size")
	}
	hs, err := p.InclusionProof(c.ctx, idx, size)
	if err != nil {
		return proofErr(err)
	}
	if err := a.record(c); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, proofJSON{Index: &idx, Size: size, Hashes: hs})
	return nil
}

func (a *API) auditConsistency(c *call) error {
	c.ev.Interaction, c.ev.Action = "audit-proof", "R"
	from, err := uintParam(c, "from", true)
	if err != nil {
		return err
	}
	to, err := uintParam(c, "to", true)
	if err != nil {
		return err
	}
	if from > to {
		return errorf(http.StatusBadRequest, "value", "from must not exceed to")
	}
	if err := a.decide(c, actAuditRead, "AuditEvent", "", ""); err != nil {
		return err
	}
	hs, err := a.Audit.Prover().ConsistencyProof(c.ctx, from, to)
	if err != nil {
		return proofErr(err)
	}
	if err := a.record(c); err != nil {
		return err
	}
	if hs == nil {
		hs = [][]byte{}
	}
	writeJSON(c.w, http.StatusOK, proofJSON{From: from, To: to, Hashes: hs})
	return nil
}

// latestSize is the size of the latest signed checkpoint.
func latestSize(c *call, p *audit.Prover) (uint64, error) {
	cp, err := p.LatestCheckpoint(c.ctx)
	if errors.Is(err, audit.ErrNoCheckpoint) {
		return 0, errorf(http.StatusNotFound, "not-found", "no checkpoint has been signed yet")
	}
	if err != nil {
		return 0, err
	}
	return checkpointSize(cp)
}

// checkpointSize reads the size line of a stored checkpoint (the server's
// own; its signature is checked by whoever relies on it).
func checkpointSize(cp []byte) (uint64, error) {
	// The signature block follows the body's lines, where ParseCheckpoint
	// ignores it like any extension line.
	n, err := audit.ParseCheckpoint(string(cp))
	return n.Size, err
}

// proofErr turns a proof request beyond the integrated tree into a 400.
func proofErr(err error) error {
	if errors.Is(err, audit.ErrTooLarge) {
		return errorf(http.StatusBadRequest, "value", "the size is larger than the integrated log")
	}
	return err
}

// uintParam reads a non-negative integer query parameter; absent is 0
// unless required.
func uintParam(c *call, name string, required bool) (uint64, error) {
	s := c.r.URL.Query().Get(name)
	if s == "" && !required {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, "value", name+" must be a non-negative integer")
	}
	return n, nil
}
