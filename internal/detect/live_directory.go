package detect

import (
	"context"
	"encoding/json"

	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// ResourceReader reads current resources (*records.Store).
type ResourceReader interface {
	// Match returns the ids of resources matching q, in ascending order.
	Match(ctx context.Context, q store.MatchQuery) ([]string, error)
	// ReadMany returns the current versions of ids, skipping deleted ones.
	ReadMany(ctx context.Context, typ string, ids []string) ([]records.Entry, error)
}

// directoryTypes are the resource types the directory is built from.
var directoryTypes = []string{"Location", "Practitioner", "PractitionerRole", "Patient",
	"Encounter", "Appointment", "CareTeam", "ServiceRequest", "MedicationRequest"}

// DirectoryFrom builds the directory from the FHIR resources in the
// store, as LoadDirectory does from a file, except that a stored resource
// the directory cannot read is left out (counted in Skipped) rather than
// failing the whole directory.
func DirectoryFrom(ctx context.Context, rr ResourceReader) (*Directory, error) {
	b := newDirectoryBuilder()
	skipped := 0
	for _, typ := range directoryTypes {
		after := ""
		for {
			ids, err := rr.Match(ctx, store.MatchQuery{Type: typ, After: after, Limit: 1000})
			if err != nil {
				return nil, err
			}
			if len(ids) == 0 {
				break
			}
			es, err := rr.ReadMany(ctx, typ, ids)
			if err != nil {
				return nil, err
			}
			for _, e := range es {
				var x resource
				if json.Unmarshal(e.Body, &x) != nil {
					skipped++
					continue
				}
				b.add(&x)
			}
			after = ids[len(ids)-1]
		}
	}
	d := b.finish()
	d.Skipped = skipped
	return d, nil
}
