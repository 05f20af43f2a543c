package detect

import (
	"bytes"
	"context"

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
// store, the same way LoadDirectory reads them from a file. It holds the
// directory's resources in memory while it reads them.
func DirectoryFrom(ctx context.Context, rr ResourceReader) (*Directory, error) {
	var buf bytes.Buffer
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
				buf.Write(bytes.ReplaceAll(e.Body, []byte("\n"), []byte(" ")))
				buf.WriteByte('\n')
			}
			after = ids[len(ids)-1]
		}
	}
	return LoadDirectory(&buf)
}
