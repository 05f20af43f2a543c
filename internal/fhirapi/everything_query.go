package fhirapi

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/b64url"
	"github.com/phivault/phivault/internal/records"
)

// patientCompartmentTypes are the resource types of the R4 Patient
// CompartmentDefinition (https://hl7.org/fhir/R4/compartmentdefinition-patient.html)
// that $everything gathers, in no particular order. Patient itself is the
// operation's subject (other Patients that link to it are their own
// compartments); AuditEvent lives in the audit log, reported by
// $access-report, not in records.
var patientCompartmentTypes = []string{
	"Account", "AdverseEvent", "AllergyIntolerance", "Appointment", "AppointmentResponse",
	"Basic", "BodyStructure", "CarePlan", "CareTeam", "ChargeItem", "Claim", "ClaimResponse",
	"ClinicalImpression", "Communication", "CommunicationRequest", "Composition", "Condition",
	"Consent", "Coverage", "CoverageEligibilityRequest", "CoverageEligibilityResponse",
	"DetectedIssue", "DeviceRequest", "DeviceUseStatement", "DiagnosticReport",
	"DocumentManifest", "DocumentReference", "Encounter", "EnrollmentRequest", "EpisodeOfCare",
	"ExplanationOfBenefit", "FamilyMemberHistory", "Flag", "Goal", "Group", "ImagingStudy",
	"Immunization", "ImmunizationEvaluation", "ImmunizationRecommendation", "Invoice", "List",
	"MeasureReport", "Media", "MedicationAdministration", "MedicationDispense",
	"MedicationRequest", "MedicationStatement", "MolecularSequence", "NutritionOrder",
	"Observation", "Person", "Procedure", "Provenance", "QuestionnaireResponse",
	"RelatedPerson", "RequestGroup", "ResearchSubject", "RiskAssessment", "Schedule",
	"ServiceRequest", "Specimen", "SupplyDelivery", "SupplyRequest", "VisionPrescription",
}

// everythingQuery is the validated parameters of one $everything request.
type everythingQuery struct {
	types   map[string]bool // _type; nil: every type
	typeArg string          // _type as given, for links
	sinceT  time.Time       // _since; zero: no bound
	sinceA  string          // _since as given, for links
	count   int             // _count (page size)
	countA  string
	cursor  string // _cursor from a next link
}

// parseEverything validates the parameters of $everything: _since (a FHIR
// instant, with a time zone), _type (a comma-separated list of Patient and
// Patient compartment types), _count (non-negative integer, capped) and
// _cursor (from a next link). _format and _pretty are accepted and have
// no effect. Anything else, start and end included (not supported), and
// any parameter given twice, is a 400 error.
func parseEverything(q url.Values) (everythingQuery, error) {
	eq := everythingQuery{count: defaultCount}
	for k, vs := range q {
		if len(vs) != 1 {
			return eq, errorf(http.StatusBadRequest, "value", "$everything: parameter "+quoteParam(k)+" may be given only once")
		}
		v := vs[0]
		switch k {
		case "_since":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil || !strings.Contains(v, "T") {
				return eq, errorf(http.StatusBadRequest, "value", "$everything: _since must be an instant with a time zone, e.g. 2024-01-02T03:04:05Z")
			}
			eq.sinceT, eq.sinceA = t, v
		case "_type":
			eq.types, eq.typeArg = map[string]bool{}, v
			for _, t := range strings.Split(v, ",") {
				t = strings.TrimSpace(t)
				if !isEverythingType(t) {
					return eq, errorf(http.StatusBadRequest, "value", "$everything: _type names a type outside the Patient compartment: "+quoteParam(t))
				}
				eq.types[t] = true
			}
		case "_count":
			n, err := countParam(q)
			if err != nil {
				return eq, err
			}
			eq.count, eq.countA = n, v
		case "_cursor":
			eq.cursor = v
		case "_format", "_pretty":
		case "start", "end":
			return eq, errorf(http.StatusBadRequest, "not-supported", "$everything: the start and end parameters are not supported")
		default:
			return eq, errorf(http.StatusBadRequest, "not-supported", "$everything: unknown parameter "+quoteParam(k))
		}
	}
	return eq, nil
}

// quoteParam bounds and quotes a client-given name for an error text.
func quoteParam(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}

func isEverythingType(t string) bool {
	if t == "Patient" {
		return true
	}
	for _, c := range patientCompartmentTypes {
		if c == t {
			return true
		}
	}
	return false
}

// wants reports whether resources of typ are asked for.
func (eq everythingQuery) wants(typ string) bool { return eq.types == nil || eq.types[typ] }

// since reports whether e was last updated at or after _since.
func (eq everythingQuery) since(e records.Entry) bool {
	return eq.sinceT.IsZero() || !e.Updated.Before(eq.sinceT)
}

// canon is the query without _cursor, as the links carry it.
func (eq everythingQuery) canon() url.Values {
	v := url.Values{}
	if eq.sinceA != "" {
		v.Set("_since", eq.sinceA)
	}
	if eq.typeArg != "" {
		v.Set("_type", eq.typeArg)
	}
	if eq.countA != "" {
		v.Set("_count", eq.countA)
	}
	return v
}

// cursorMAC binds a position to the patient, the query and the caller
// (user and session) with the keyed blind-token function.
func (a *API) cursorMAC(c *call, patient string, eq everythingQuery, pos string) []byte {
	return a.Records.Token("everything-cursor", patient, eq.canon().Encode(), c.who.UserID, c.who.SessionID, pos)
}

// sealEverythingCursor returns the _cursor value continuing after p. The
// position names a resource the caller was just sent; the MAC keeps
// anyone else (or an edited query) from using it.
func (a *API) sealEverythingCursor(c *call, patient string, eq everythingQuery, p everythingPos) string {
	pos := p.Type + "/" + p.ID
	return base64.RawURLEncoding.EncodeToString([]byte(pos)) + "." + hex.EncodeToString(a.cursorMAC(c, patient, eq, pos))
}

// openEverythingCursor checks eq's _cursor against the caller and query.
func (a *API) openEverythingCursor(c *call, patient string, eq everythingQuery) (everythingPos, error) {
	bad := errorf(http.StatusBadRequest, "value", "$everything: the paging link is not valid for this caller or query")
	enc, macHex, ok := strings.Cut(eq.cursor, ".")
	if !ok {
		return everythingPos{}, bad
	}
	raw, err := b64url.Decode(enc) // one spelling per link
	// The MAC is compared as the lower-case hex the link was written with:
	// hex.DecodeString would also take upper case, a second spelling.
	if err != nil || !hmac.Equal([]byte(macHex), []byte(hex.EncodeToString(a.cursorMAC(c, patient, eq, string(raw))))) {
		return everythingPos{}, bad
	}
	typ, id, ok := strings.Cut(string(raw), "/")
	if !ok {
		return everythingPos{}, bad
	}
	return everythingPosOf(records.Entry{Type: typ, ID: id}), nil
}
