// Package synth generates phivault's own deterministic synthetic population: FHIR R4 transaction
// Bundles for `phivault demo`, tests and benchmarks.
//
// The population is one small health system (organizations, locations, practitioners and their
// roles) and its patients, each with names, addresses, identifiers and telecom, and a history of
// encounters, conditions, observations (vital signs and laboratory results), medication requests
// and one care team. Clinical content uses real code systems: SNOMED CT, LOINC with UCUM units,
// RxNorm and the HL7 terminology code systems.
//
// Contract:
//   - Deterministic: the same Options give byte-identical JSON (encoding/json sorts map keys; the
//     generator never reads the clock or iterates maps). Every date lies on or before
//     Options.Reference.
//   - The first bundle holds the shared resources as PUT entries with fixed, client-chosen ids
//     (prefixed "synth-"); loading it twice is idempotent.
//   - Every later bundle holds one patient's compartment as POST entries with urn:uuid fullUrls.
//     Its references are either urn:uuid references to entries of the same bundle or literal
//     "Practitioner/<id>", "Organization/<id>" and "Location/<id>" references to the shared bundle.
//   - Bundles are plain JSON values (map[string]any, []any, string, bool, int, json.Number), freshly
//     built on each call, so callers may mutate them.
//   - Patient i depends only on Seed, Reference, the staff size (Practitioners, whose default
//     grows with Patients: set it explicitly to compare populations of different sizes) and i,
//     so PatientBundle can build any patient alone or concurrently.
//   - About 5% of patients are VIPs: every resource of their bundle carries meta.security with
//     the v3-Confidentiality code R (restricted) or V (very restricted).
//   - MRNs are unique within a population (SSNs too, up to a million patients).
//   - All names, identifiers and contact details are invented; SSNs use the never-issued 999 area
//     and phone numbers the fictional 555-01xx range.
//
// Scale: 100 patients give about 8,500 resources (roughly 10 encounters and 85 resources per
// patient, about 90 KB of JSON each).
package synth

import (
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Options configures a population. The zero value is a valid default population.
type Options struct {
	// Seed selects the population; the same Seed (and other options) gives the same output.
	Seed int64
	// Patients is the number of patient bundles; zero or less means DefaultPatients.
	Patients int
	// Practitioners is the size of the shared staff; it is raised to at least 12 (enough for
	// every specialty) and defaults to max(12, Patients/8).
	Practitioners int
	// Reference is "now" for the population: ages are computed and events end there.
	// The zero value means DefaultReference.
	Reference time.Time
}

// DefaultPatients is the population size used when Options.Patients is not positive.
const DefaultPatients = 100

// DefaultReference is the reference date used when Options.Reference is zero.
var DefaultReference = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (o Options) normalized() Options {
	if o.Patients <= 0 {
		o.Patients = DefaultPatients
	}
	if o.Practitioners <= 0 {
		o.Practitioners = o.Patients / 8
	}
	o.Practitioners = max(o.Practitioners, len(specialtyCycle))
	if o.Reference.IsZero() {
		o.Reference = DefaultReference
	}
	o.Reference = o.Reference.UTC()
	return o
}

// Generate returns the whole population: the shared bundle followed by one transaction bundle per
// patient. For large populations prefer Bundles, which holds one bundle in memory at a time.
func Generate(opt Options) []map[string]any {
	opt = opt.normalized()
	out := make([]map[string]any, 0, opt.Patients+1)
	for b := range Bundles(opt) {
		out = append(out, b)
	}
	return out
}

// Bundles yields the same bundles as Generate, in the same order, building each on demand.
func Bundles(opt Options) iter.Seq[map[string]any] {
	opt = opt.normalized()
	return func(yield func(map[string]any) bool) {
		ro := newRoster(opt)
		if !yield(ro.bundle()) {
			return
		}
		for i := range opt.Patients {
			if !yield(patientBundle(opt, ro, i)) {
				return
			}
		}
	}
}

// SharedBundle returns the first bundle of the population: Organizations, Locations,
// Practitioners and PractitionerRoles as PUT entries.
func SharedBundle(opt Options) map[string]any {
	return newRoster(opt.normalized()).bundle()
}

// PatientBundle returns the bundle of patient i (0 <= i < Patients), equal to bundle i+1 of
// Generate. Patients are independent of each other, so they may be built concurrently.
func PatientBundle(opt Options, i int) map[string]any {
	opt = opt.normalized()
	if i < 0 || i >= opt.Patients {
		panic(fmt.Sprintf("synth: patient index %d out of range [0,%d)", i, opt.Patients))
	}
	return patientBundle(opt, newRoster(opt), i)
}

// Streams of randomness: stream 0 is the shared roster, stream i+1 is patient i.
func newRand(seed int64, stream uint64) *rand.Rand {
	s := uint64(seed)
	return rand.New(rand.NewPCG(splitmix(s^0x5eed5eed5eed5eed+stream), splitmix(s+stream*0x9e3779b97f4a7c15)))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// gen is a random source with helpers for building resources.
type gen struct{ r *rand.Rand }

func (g gen) intn(n int) int                 { return g.r.IntN(n) }
func (g gen) chance(p float64) bool          { return g.r.Float64() < p }
func (g gen) rangeInt(lo, hi int) int        { return lo + g.r.IntN(hi-lo+1) }
func (g gen) norm(mean, sd float64) float64  { return mean + sd*g.r.NormFloat64() }
func (g gen) uniform(lo, hi float64) float64 { return lo + (hi-lo)*g.r.Float64() }

func pick[T any](g gen, list []T) T { return list[g.r.IntN(len(list))] }

// between returns a time uniformly in [a, b], truncated to the minute.
func (g gen) between(a, b time.Time) time.Time {
	if !b.After(a) {
		return a
	}
	d := b.Sub(a)
	return a.Add(time.Duration(g.r.Int64N(int64(d) + 1))).Truncate(time.Minute)
}

// uuid returns a random (version 4) UUID drawn from the generator, so it is deterministic.
func (g gen) uuid() string {
	var b [16]byte
	hi, lo := g.r.Uint64(), g.r.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// JSON building helpers.
type obj = map[string]any
type arr = []any

func coding(system, code, display string) obj {
	return obj{"system": system, "code": code, "display": display}
}

func concept(system, code, display string) obj {
	return obj{"coding": arr{coding(system, code, display)}, "text": display}
}

func ref(reference, display string) obj {
	if display == "" {
		return obj{"reference": reference}
	}
	return obj{"reference": reference, "display": display}
}

// num renders v as a JSON number with prec decimals, as FHIR decimals keep their precision.
func num(v float64, prec int) json.Number {
	p := math.Pow(10, float64(prec))
	v = math.Round(v*p) / p
	if v == 0 {
		v = 0 // no "-0"
	}
	return json.Number(strconv.FormatFloat(v, 'f', prec, 64))
}

func quantity(v float64, prec int, unit, code string) obj {
	return obj{"value": num(v, prec), "unit": unit, "system": ucum, "code": code}
}

func date(t time.Time) string     { return t.UTC().Format(time.DateOnly) }
func dateTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func years(t time.Time, n float64) time.Time {
	return t.Add(time.Duration(n * 365.25 * 24 * float64(time.Hour)))
}

func ageAt(birth, at time.Time) int {
	a := at.Year() - birth.Year()
	if at.Month() < birth.Month() || at.Month() == birth.Month() && at.Day() < birth.Day() {
		a--
	}
	return max(a, 0)
}

// transaction wraps entries in a transaction Bundle.
func transaction(entries arr) obj {
	return obj{"resourceType": "Bundle", "type": "transaction", "entry": entries}
}
