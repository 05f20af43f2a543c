package policy

import (
	"strings"

	"github.com/cedar-policy/cedar-go"
)

// The Cedar model the policies see (documented at the top of
// default.cedar). Everything is computed here, in Go, from the Request and
// the Facts, so that a policy is a plain boolean formula over named
// attributes and evaluating it needs no entity store.

// Resource kinds (resource.kind).
const (
	kindPatient   = "patient"   // patient data, type-level patient data, unknown types
	kindReference = "reference" // shared directory and terminology data
	kindAudit     = "audit"     // the audit log
	kindAdmin     = "admin"     // users, keys, configuration (the admin action)
)

// referenceTypes are the resource types outside any patient compartment
// that hold no patient data: the directory, terminology and conformance
// resources, and schedules. Any type not listed is treated as patient data
// (deny by default: a new type is protected until someone lists it here).
var referenceTypes = map[string]bool{
	"Practitioner": true, "PractitionerRole": true, "Organization": true,
	"OrganizationAffiliation": true, "Location": true, "HealthcareService": true,
	"Endpoint": true, "Medication": true, "MedicationKnowledge": true,
	"Substance": true, "DeviceDefinition": true, "DeviceMetric": true,
	"ValueSet": true, "CodeSystem": true, "ConceptMap": true, "NamingSystem": true,
	"StructureDefinition": true, "StructureMap": true, "SearchParameter": true,
	"OperationDefinition": true, "CompartmentDefinition": true,
	"CapabilityStatement": true, "ImplementationGuide": true, "Questionnaire": true,
	"PlanDefinition": true, "ActivityDefinition": true, "Library": true,
	"Measure": true, "ObservationDefinition": true, "SpecimenDefinition": true,
	"ChargeItemDefinition": true, "Schedule": true, "Slot": true,
}

// kindOf classifies a request's target. A request that names a patient is
// always patient data, whatever its type or action.
func kindOf(a Action, typ, patient string) string {
	switch {
	case patient != "":
		return kindPatient
	case a == Admin:
		return kindAdmin
	case typ == "AuditEvent":
		return kindAudit
	case referenceTypes[typ]:
		return kindReference
	default:
		return kindPatient
	}
}

// purposeCodes maps the plain words callers may use to v3 ActReason codes;
// codes themselves are accepted in any case.
var purposeCodes = map[string]string{
	"treatment": "TREAT", "payment": "HPAYMT", "operations": "HOPERAT",
	"research": "HRESCH", "emergency": "ETREAT",
}

// normalizePurpose returns the v3 code for a purpose of use ("" stays "").
func normalizePurpose(p string) string {
	if c, ok := purposeCodes[strings.ToLower(p)]; ok {
		return c
	}
	return strings.ToUpper(p)
}

// operatorMethods are the local operator paths: they need the data
// directory and its key.
func operatorMethod(m string) bool {
	return m == "operator-token" || m == "local-cli" || m == "admin-socket"
}

// interactiveMethod reports a person's sign-in, where MFA is required: a
// console login (password, passkey, single sign-on) and a SMART token,
// which a user authorized through that login and which carries whether
// they proved a second factor.
func interactiveMethod(m string) bool {
	return strings.HasPrefix(m, "password") || strings.HasPrefix(m, "sso") || m == "passkey" || m == "smart"
}

// workforce reports whether p holds any role other than the non-workforce
// roles patient, device and vendor.
func workforce(p Principal) bool {
	for _, r := range p.Roles {
		if r != "patient" && r != "device" && r != "vendor" {
			return true
		}
	}
	return false
}

func restricted(labels []string) bool {
	for _, l := range labels {
		if l == "R" || l == "V" {
			return true
		}
	}
	return false
}

// facts are what Decide learned about the request before evaluating it.
type facts struct {
	purpose         string
	relationship    bool
	own             bool
	consentDeny     []string // ids of the matching deny consents
	researchConsent bool
	breakGlass      bool
	scopeOK         bool
}

var (
	typeUser   = cedar.EntityType("User")
	typeRole   = cedar.EntityType("Role")
	typeAction = cedar.EntityType("Action")
	typeSystem = cedar.EntityType("System") // the resource of whole-system requests
)

// cedarRequest builds the Cedar request and the two entities it needs,
// and the key its evaluation may be memoised under (ok false: it may not).
// Records are taken from c: building a Cedar record sorts and hashes its
// keys, which would otherwise dominate the cost of a decision.
func cedarRequest(c *caches, r Request, f *facts) (req cedar.Request, ents entities, key decisionKey, ok bool) {
	p := r.Principal
	var pbits uint8
	for i, b := range []bool{p.MFA, p.Trained, interactiveMethod(p.Method), operatorMethod(p.Method), workforce(p)} {
		if b {
			pbits |= 1 << i
		}
	}
	principal := cedar.Entity{
		UID:        cedar.NewEntityUID(typeUser, cedar.String(p.UserID)),
		Parents:    c.roles(p.Roles),
		Attributes: c.principal[pbits],
	}
	kind := kindOf(r.Action, r.Type, r.Patient)
	etype := cedar.EntityType(r.Type)
	if r.Type == "" {
		etype = typeSystem
	}
	rk := resourceKey{r.Type, kind, restricted(r.Labels)}
	resource := cedar.Entity{
		UID:        cedar.NewEntityUID(etype, cedar.String(r.ID)),
		Attributes: c.resource(rk),
	}
	var cbits uint8
	for i, b := range []bool{kind == kindPatient && r.Patient == "", f.relationship, f.own,
		len(f.consentDeny) > 0, f.researchConsent, f.breakGlass, f.scopeOK} {
		if b {
			cbits |= 1 << i
		}
	}
	ck := contextKey{f.purpose, cbits}
	req = cedar.Request{
		Principal: principal.UID,
		Action:    cedar.NewEntityUID(typeAction, cedar.String(r.Action)),
		Resource:  resource.UID,
		Context:   c.context(ck),
	}
	key, ok = memoKey(r, pbits, rk, ck)
	return req, entities{principal: principal, resource: resource}, key, ok
}

// actionGroups are the parents of each action, so policies can say
// `action in Action::"view"`: a parent lookup, where a set literal such as
// [Action::"read", Action::"search"] is rebuilt on every evaluation.
var actionGroups = func() map[cedar.EntityUID]cedar.Entity {
	groups := map[Action][]string{
		Read:   {"view", "disclose"},
		Search: {"view", "disclose"},
		Export: {"disclose"},
		Create: {"write"},
		Update: {"write"},
	}
	m := map[cedar.EntityUID]cedar.Entity{}
	for a, gs := range groups {
		uid := cedar.NewEntityUID(typeAction, cedar.String(a))
		parents := make([]cedar.EntityUID, len(gs))
		for i, g := range gs {
			parents[i] = cedar.NewEntityUID(typeAction, cedar.String(g))
		}
		m[uid] = cedar.Entity{UID: uid, Parents: cedar.NewEntityUIDSet(parents...)}
	}
	return m
}()

// entities is the whole entity store of one request: the caller, the
// target, and the static action groups. Roles have no parents.
type entities struct {
	principal, resource cedar.Entity
}

// Get implements cedar.EntityGetter.
func (e entities) Get(uid cedar.EntityUID) (cedar.Entity, bool) {
	switch {
	case uid == e.principal.UID:
		return e.principal, true
	case uid == e.resource.UID:
		return e.resource, true
	case uid.Type == typeAction:
		a, ok := actionGroups[uid]
		return a, ok
	}
	return cedar.Entity{}, false
}
