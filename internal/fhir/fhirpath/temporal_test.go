package fhirpath

import (
	"testing"
	"time"
)

// BenchmarkParseDateTime parses the dateTimes search reads most: a
// Synthea effectiveDateTime (offset), a UTC instant, a date.
func BenchmarkParseDateTime(b *testing.B) {
	for _, s := range []string{"2019-05-14T09:27:32-04:00", "2019-05-14T13:27:32.123Z", "2019-05-14"} {
		b.Run(s, func(b *testing.B) {
			for b.Loop() {
				if _, err := ParseDateTime(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestParseDateTimeShapes: the field splitting and the shared zones give
// what the text says: every precision, offsets east and west, and too
// many fields of either part refused.
func TestParseDateTimeShapes(t *testing.T) {
	good := []struct {
		in   string
		utc  string
		prec Precision
		tz   bool
	}{
		{"2019", "2019-01-01T00:00:00Z", Year, false},
		{"2019-05", "2019-05-01T00:00:00Z", Month, false},
		{"2019-05-14", "2019-05-14T00:00:00Z", Day, false},
		{"2019-05-14T09", "2019-05-14T09:00:00Z", Hour, false},
		{"2019-05-14T09:27", "2019-05-14T09:27:00Z", Minute, false},
		{"2019-05-14T09:27:32-04:00", "2019-05-14T13:27:32Z", Second, true},
		{"2019-05-14T09:27:32+05:30", "2019-05-14T03:57:32Z", Second, true},
		{"2019-05-14T09:27:32.5+05:30", "2019-05-14T03:57:32.5Z", Millisecond, true},
		{"2019-05-14T13:27:32.123Z", "2019-05-14T13:27:32.123Z", Millisecond, true},
	}
	for _, c := range good {
		got, err := ParseDateTime(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if u := got.T.UTC().Format(time.RFC3339Nano); u != c.utc || got.Prec != c.prec || got.HasTZ != c.tz {
			t.Errorf("%q: %s precision %d tz %v, want %s %d %v", c.in, u, got.Prec, got.HasTZ, c.utc, c.prec, c.tz)
		}
	}
	a, _ := ParseDateTime("2019-05-14T09:27:32-03:30")
	b, _ := ParseDateTime("2020-01-01T00:00:00-03:30")
	if a.T.Location() != b.T.Location() {
		t.Error("two values at one offset got two zones")
	}
	if _, off := a.T.Zone(); off != -(3*3600 + 30*60) {
		t.Errorf("offset %d, want %d", off, -(3*3600 + 30*60))
	}
	for _, in := range []string{"2019-05-14-", "2019-05-14-01", "2019--05", "2019-05-14T09:27:32:01", "2019-05-14T09:", "2019-05-14T:27", "2019-05-14T09:27:32+05", "2019-05-14T09:27:32+15:00"} {
		if _, err := ParseDateTime(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}
