package searchparam

import (
	"time"

	"github.com/phivault/phivault/internal/fhir/fhirpath"
)

// Precision is the precision a date was written with (fhirpath.Year ...
// fhirpath.Millisecond).
type Precision = fhirpath.Precision

// Open ends of date intervals (a Period without start or end).
var (
	MinTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// ParseDate parses a FHIR date, dateTime or instant (also a search value
// without its prefix) into the closed interval [low, high] in UTC that it
// denotes at its precision: "1974-12-25" is the whole day, "2013-01" the
// whole month, "2015-02-07T13:28:17.239+02:00" one millisecond. A value
// with a time but no offset is taken as UTC.
func ParseDate(s string) (low, high time.Time, p Precision, err error) {
	t, err := fhirpath.ParseDateTime(s)
	if err != nil {
		return time.Time{}, time.Time{}, 0, err
	}
	return t.T.UTC(), t.End().UTC().Add(-time.Nanosecond), t.Prec, nil
}
