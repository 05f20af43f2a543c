// Package care answers the facts that access decisions take from stored
// data: the care relationships between a practitioner and a patient, and
// the patient's active privacy consents. It implements policy.Facts.
//
// Every answer comes from the stored resources through the search engine's
// blind indexes (CareTeam?subject=...&participant=..., never a scan of all
// data) and records; nothing is kept in plaintext beyond a short-lived,
// bounded in-memory cache. Lookups run as the internal System principal:
// they are not disclosures to the caller and are not audited as reads.
//
// Staleness: an answer may be up to Options.TTL old (5 seconds by
// default), so a new CareTeam membership, or a withdrawn Consent, takes
// effect within that time.
package care

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// Searcher is the part of the search engine (internal/search) the facts
// need: the ids of the current resources of typ that match query, at most
// limit (0: all). It must evaluate the query over all stored data (no
// caller visibility).
type Searcher interface {
	Find(ctx context.Context, typ string, query url.Values, limit int) (ids []string, check *store.MatchQuery, err error)
}

// System is the principal the lookups run as (set in their context).
var System = policy.Principal{UserID: "system:care-facts", Roles: []string{"system"}, Method: "internal"}

// Relationship kinds, as named in policy.Facts.
const (
	KindCareTeam   = "careteam"             // member of a CareTeam about the patient
	KindAssignment = "assignment"           // explicit assignment: a CareTeam with category "assignment"
	KindEncounter  = "encounter"            // participant in an Encounter within the window
	KindAppoint    = "appointment"          // actor in an Appointment within the window
	KindGP         = "general-practitioner" // Patient.generalPractitioner
	KindRole       = "practitioner-role"    // a PractitionerRole at the patient's managing organization
)

// AssignmentCode is the CareTeam.category code that marks an explicit
// assignment an administrator made (any code system). An explicit
// assignment is a CareTeam: subject the patient, participant the
// practitioner (or one of their PractitionerRoles).
const AssignmentCode = "assignment"

// Options tune New; zero values take the defaults.
type Options struct {
	// Margin widens the window of encounters and appointments: they
	// count from Margin before their start to Margin after their end (or
	// while ongoing). Default 30 days.
	Margin time.Duration
	// TTL is how long an answer is cached (the staleness bound). Default
	// 5 seconds; negative disables the cache.
	TTL time.Duration
	// MaxEntries bounds the cache. Default 10,000.
	MaxEntries int
	// MaxMatches bounds the resources one lookup reads. Default 1,000.
	MaxMatches int
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// Facts implements policy.Facts over records and a Searcher. It is safe
// for concurrent use.
type Facts struct {
	rs   *records.Store
	s    Searcher
	o    Options
	mu   sync.Mutex
	memo map[string]memo
}

var _ policy.Facts = (*Facts)(nil)

type memo struct {
	until time.Time
	val   any
}

// New returns Facts reading through rs and s.
func New(rs *records.Store, s Searcher, o Options) *Facts {
	if o.Margin == 0 {
		o.Margin = 30 * 24 * time.Hour
	}
	if o.TTL == 0 {
		o.TTL = 5 * time.Second
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 10_000
	}
	if o.MaxMatches <= 0 {
		o.MaxMatches = 1000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Facts{rs: rs, s: s, o: o, memo: map[string]memo{}}
}

// cached returns the value under key, computing it with fn when absent or
// expired. Errors are not cached.
func cached[T any](f *Facts, key string, fn func() (T, error)) (T, error) {
	now := f.o.Now()
	if f.o.TTL > 0 {
		f.mu.Lock()
		m, ok := f.memo[key]
		f.mu.Unlock()
		if ok && now.Before(m.until) {
			return m.val.(T), nil
		}
	}
	v, err := fn()
	if err != nil || f.o.TTL <= 0 {
		return v, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.memo) >= f.o.MaxEntries {
		for k, m := range f.memo {
			if !now.Before(m.until) {
				delete(f.memo, k)
			}
		}
		for k := range f.memo {
			if len(f.memo) < f.o.MaxEntries {
				break
			}
			delete(f.memo, k)
		}
	}
	f.memo[key] = memo{until: now.Add(f.o.TTL), val: v}
	return v, nil
}

// Relationships implements policy.Facts: the kinds of care relationship
// between Practitioner/practitioner and Patient/patient, sorted; nil when
// there is none (or either id is empty).
func (f *Facts) Relationships(ctx context.Context, practitioner, patient string) ([]string, error) {
	if !fhir.IsID(practitioner) || !fhir.IsID(patient) {
		return nil, nil // no such resource can exist; nothing to relate
	}
	return cached(f, "rel\x00"+practitioner+"\x00"+patient, func() ([]string, error) {
		return f.relationships(policy.WithPrincipal(ctx, System), practitioner, patient)
	})
}

func (f *Facts) relationships(ctx context.Context, practitioner, patient string) ([]string, error) {
	roles, err := f.roles(ctx, practitioner)
	if err != nil {
		return nil, err
	}
	actors := []string{"Practitioner/" + practitioner}
	for _, r := range roles {
		actors = append(actors, "PractitionerRole/"+r.id)
	}
	kinds := map[string]bool{}
	pat := "Patient/" + patient
	now := f.o.Now()

	teams, err := f.find(ctx, "CareTeam", url.Values{"subject": {pat}, "participant": {strings.Join(actors, ",")}})
	if err != nil {
		return nil, err
	}
	for _, e := range teams {
		if k := careTeamKind(e.Body, actors, now); k != "" {
			kinds[k] = true
		}
	}
	encs, err := f.find(ctx, "Encounter", url.Values{"subject": {pat}, "participant": {strings.Join(actors, ",")}})
	if err != nil {
		return nil, err
	}
	for _, e := range encs {
		if f.encounterCurrent(e.Body, now) {
			kinds[KindEncounter] = true
			break
		}
	}
	appts, err := f.find(ctx, "Appointment", url.Values{"actor": {pat, strings.Join(actors, ",")}})
	if err != nil {
		return nil, err
	}
	for _, e := range appts {
		if f.appointmentCurrent(e.Body, now) {
			kinds[KindAppoint] = true
			break
		}
	}
	p, err := f.rs.Read(ctx, "Patient", patient)
	switch {
	case errors.Is(err, records.ErrNotFound), errors.Is(err, records.ErrDeleted):
	case err != nil:
		return nil, fmt.Errorf("care: read patient: %w", err)
	default:
		var pr struct {
			GP  []reference `json:"generalPractitioner"`
			Org reference   `json:"managingOrganization"`
		}
		if json.Unmarshal(p.Body, &pr) == nil {
			for _, g := range pr.GP {
				if slices.Contains(actors, g.local()) {
					kinds[KindGP] = true
				}
			}
			if org := pr.Org.local(); org != "" {
				for _, r := range roles {
					if r.org == org && r.current(now) {
						kinds[KindRole] = true
					}
				}
			}
		}
	}
	if len(kinds) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// role is one PractitionerRole of the practitioner.
type role struct {
	id, org     string
	active      bool
	start, stop time.Time
}

func (r role) current(now time.Time) bool {
	return r.active && (r.start.IsZero() || !now.Before(r.start)) && (r.stop.IsZero() || !now.After(r.stop))
}

// roles returns the practitioner's PractitionerRoles (cached on their own:
// every relationship question about the practitioner needs them).
func (f *Facts) roles(ctx context.Context, practitioner string) ([]role, error) {
	return cached(f, "roles\x00"+practitioner, func() ([]role, error) {
		es, err := f.find(ctx, "PractitionerRole", url.Values{"practitioner": {"Practitioner/" + practitioner}})
		if err != nil {
			return nil, err
		}
		var out []role
		for _, e := range es {
			var pr struct {
				Active *bool     `json:"active"`
				Org    reference `json:"organization"`
				Period period    `json:"period"`
			}
			if json.Unmarshal(e.Body, &pr) != nil {
				continue
			}
			r := role{id: e.ID, org: pr.Org.local(), active: pr.Active == nil || *pr.Active}
			r.start, r.stop = pr.Period.bounds()
			out = append(out, r)
		}
		return out, nil
	})
}

// find reads the current resources of typ matching q (at most MaxMatches;
// more is an error, so that a decision never rests on a partial answer).
func (f *Facts) find(ctx context.Context, typ string, q url.Values) ([]records.Entry, error) {
	ids, _, err := f.s.Find(ctx, typ, q, f.o.MaxMatches+1)
	if err != nil {
		return nil, fmt.Errorf("care: search %s: %w", typ, err)
	}
	if len(ids) > f.o.MaxMatches {
		return nil, fmt.Errorf("care: search %s: more than %d matches", typ, f.o.MaxMatches)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	es, err := f.rs.ReadMany(ctx, typ, ids)
	if err != nil {
		return nil, fmt.Errorf("care: read %s: %w", typ, err)
	}
	return es, nil
}
