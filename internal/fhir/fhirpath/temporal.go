package fhirpath

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Precision is the finest unit a date or time value was written with.
type Precision int

// Precisions from coarsest to finest.
const (
	Year Precision = iota + 1
	Month
	Day
	Hour
	Minute
	Second
	Millisecond
)

// TemporalKind distinguishes FHIRPath Date, DateTime and Time values.
type TemporalKind int

// Temporal kinds.
const (
	KindDate TemporalKind = iota + 1
	KindDateTime
	KindTime
)

// Temporal is a partial date, dateTime or time. T holds the value with
// unwritten parts at their minimum; for a Time the date is 0000-01-01.
// HasTZ reports whether an offset was written; without one, T is in UTC.
type Temporal struct {
	Kind  TemporalKind
	T     time.Time
	Prec  Precision
	HasTZ bool
	src   string
}

func (t Temporal) String() string { return t.src }

// ParseDateTime parses a FHIR date, dateTime or instant: YYYY, YYYY-MM,
// YYYY-MM-DD, or YYYY-MM-DDThh[:mm[:ss[.fff]]][Z|±hh:mm]. Values without an
// offset are taken as UTC.
func ParseDateTime(s string) (Temporal, error) {
	if len(s) < 4 || len(s) > 64 {
		return Temporal{}, badDateTime(s)
	}
	datePart, timePart, hasT := strings.Cut(s, "T")
	var buf [3]string
	fields, ok := splitN(buf[:0], datePart, "-")
	if !ok {
		return Temporal{}, badDateTime(s)
	}
	nums := [3]int{0, 1, 1}
	want := [3]int{4, 2, 2}
	for i, f := range fields {
		if len(f) != want[i] {
			return Temporal{}, badDateTime(s)
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return Temporal{}, badDateTime(s)
		}
		nums[i] = n
	}
	if nums[1] < 1 || nums[1] > 12 || nums[2] < 1 || nums[2] > 31 {
		return Temporal{}, badDateTime(s)
	}
	out := Temporal{Kind: KindDate, Prec: Precision(len(fields)), src: s}
	if !hasT {
		out.T = time.Date(nums[0], time.Month(nums[1]), nums[2], 0, 0, 0, 0, time.UTC)
		if out.T.Day() != nums[2] {
			return Temporal{}, badDateTime(s)
		}
		return out, nil
	}
	if len(fields) != 3 && timePart != "" {
		return Temporal{}, badDateTime(s)
	}
	out.Kind = KindDateTime
	if timePart == "" { // "2015T" or "2015-02-04T": a dateTime at date precision
		out.T = time.Date(nums[0], time.Month(nums[1]), nums[2], 0, 0, 0, 0, time.UTC)
		return out, nil
	}
	clock, loc, err := parseClock(timePart)
	if err != nil {
		return Temporal{}, badDateTime(s)
	}
	out.Prec, out.HasTZ = clock.prec, loc != nil
	if loc == nil {
		loc = time.UTC
	}
	out.T = time.Date(nums[0], time.Month(nums[1]), nums[2], clock.h, clock.m, clock.s, clock.ns, loc)
	if out.T.Day() != nums[2] {
		return Temporal{}, badDateTime(s)
	}
	return out, nil
}

// badDateTime is ParseDateTime's error for s, made only when it fails.
func badDateTime(s string) error { return fmt.Errorf("fhirpath: invalid date/time %q", s) }

type clockParts struct {
	h, m, s, ns int
	prec        Precision
}

// parseClock parses hh[:mm[:ss[.fff]]] with an optional Z or ±hh:mm suffix.
func parseClock(s string) (clockParts, *time.Location, error) {
	var loc *time.Location
	if strings.HasSuffix(s, "Z") {
		s, loc = s[:len(s)-1], time.UTC
	} else if i := strings.LastIndexAny(s, "+-"); i > 0 {
		off := s[i+1:]
		oh, om, ok := strings.Cut(off, ":")
		h, err1 := strconv.Atoi(oh)
		m, err2 := strconv.Atoi(om)
		if !ok || len(oh) != 2 || len(om) != 2 || err1 != nil || err2 != nil || h > 14 || m > 59 {
			return clockParts{}, nil, fmt.Errorf("bad offset")
		}
		secs := h*3600 + m*60
		if s[i] == '-' {
			secs = -secs
		}
		loc = fixedZone(secs)
		s = s[:i]
	}
	var c clockParts
	var buf [3]string
	parts, ok := splitN(buf[:0], s, ":")
	if !ok {
		return c, nil, fmt.Errorf("bad time")
	}
	frac := ""
	if len(parts) == 3 {
		parts[2], frac, _ = strings.Cut(parts[2], ".")
	}
	vals := [...]*int{&c.h, &c.m, &c.s}
	max := [...]int{23, 59, 60}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if len(p) != 2 || err != nil || n < 0 || n > max[i] {
			return c, nil, fmt.Errorf("bad time")
		}
		*vals[i] = n
	}
	c.prec = Hour + Precision(len(parts)-1)
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, err := strconv.Atoi(frac)
		if err != nil || n < 0 {
			return c, nil, fmt.Errorf("bad fraction")
		}
		for i := len(frac); i < 9; i++ {
			n *= 10
		}
		c.ns, c.prec = n, Millisecond
	}
	return c, loc, nil
}

// splitN appends to dst (of capacity n) the fields of s around sep, as
// strings.Split would give them; ok is false if there are more than n.
func splitN(dst []string, s, sep string) (fields []string, ok bool) {
	for {
		f, rest, more := strings.Cut(s, sep)
		if len(dst) == cap(dst) {
			return nil, false
		}
		dst = append(dst, f)
		if !more {
			return dst, true
		}
		s = rest
	}
}

// zones holds the fixed zones of the offsets parsed so far (at most
// 29 * 60 of them): one Location per offset, not one per value parsed.
var zones sync.Map // seconds east of UTC -> *time.Location

// fixedZone returns the unnamed zone secs seconds east of UTC.
func fixedZone(secs int) *time.Location {
	if z, ok := zones.Load(secs); ok {
		return z.(*time.Location)
	}
	z, _ := zones.LoadOrStore(secs, time.FixedZone("", secs))
	return z.(*time.Location)
}

// parseTemporalLiteral parses the text after '@' in a FHIRPath literal.
func parseTemporalLiteral(s string) (Temporal, error) {
	if strings.HasPrefix(s, "T") {
		c, loc, err := parseClock(s[1:])
		if err != nil || loc != nil {
			return Temporal{}, fmt.Errorf("invalid time literal @%s", s)
		}
		t := time.Date(0, 1, 1, c.h, c.m, c.s, c.ns, time.UTC)
		return Temporal{Kind: KindTime, T: t, Prec: c.prec, src: s[1:]}, nil
	}
	return ParseDateTime(s)
}

// End returns the first instant after the interval t denotes at its precision.
func (t Temporal) End() time.Time {
	switch t.Prec {
	case Year:
		return t.T.AddDate(1, 0, 0)
	case Month:
		return t.T.AddDate(0, 1, 0)
	case Day:
		return t.T.AddDate(0, 0, 1)
	case Hour:
		return t.T.Add(time.Hour)
	case Minute:
		return t.T.Add(time.Minute)
	case Second:
		return t.T.Add(time.Second)
	}
	return t.T.Add(time.Millisecond)
}

// compareTemporal orders a and b. ok is false when the result is unknown
// because the values have different precision and agree at the shared one.
func compareTemporal(a, b Temporal) (cmp int, ok bool) {
	pa, pb := a.Prec, b.Prec
	// seconds and milliseconds are one precision for comparison
	if pa == Millisecond {
		pa = Second
	}
	if pb == Millisecond {
		pb = Second
	}
	if pa == pb {
		return a.T.Compare(b.T), true
	}
	p := min(pa, pb)
	ta, tb := truncate(a, p), truncate(b, p)
	if c := ta.Compare(tb); c != 0 {
		return c, true
	}
	return 0, false
}

func truncate(t Temporal, p Precision) time.Time {
	x := t.T
	if t.HasTZ && t.Kind != KindDate {
		x = x.UTC()
	}
	switch p {
	case Year:
		return time.Date(x.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	case Month:
		return time.Date(x.Year(), x.Month(), 1, 0, 0, 0, 0, time.UTC)
	case Day:
		return time.Date(x.Year(), x.Month(), x.Day(), 0, 0, 0, 0, time.UTC)
	case Hour:
		return x.Truncate(time.Hour)
	case Minute:
		return x.Truncate(time.Minute)
	}
	return x.Truncate(time.Second)
}
