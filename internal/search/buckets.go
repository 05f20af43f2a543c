package search

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Date buckets. A date value is an interval [low, high]; it is indexed
// under the calendar buckets it intersects, at several levels:
//
//	X decade, Y year, M month, D day     ("Y2021", "M2021-03", "D2021-03-15")
//	YC year without month buckets, MC month without day buckets
//	LO before 1900, HI after 2099, W wider than maxYears within that range
//
// A value gets day buckets only if it spans at most maxDays days, month
// buckets only if it spans at most maxMonths months, and year buckets only
// if it spans at most maxYears years; the YC/MC markers say that the finer
// level is absent so that a query at that level still finds it. A range
// query is covered by the coarsest buckets that fit inside it plus the
// markers, and the candidates are filtered exactly after decryption.
const (
	minYear   = 1900
	maxYear   = 2099
	maxDays   = 62
	maxMonths = 24
	maxYears  = 30
)

var (
	rangeLow  = time.Date(minYear, 1, 1, 0, 0, 0, 0, time.UTC)
	rangeHigh = time.Date(maxYear+1, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)
)

func dayStart(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func monthStart(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func yearStart(y int) time.Time { return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC) }

func dKey(t time.Time) string { return "D" + t.Format("2006-01-02") }
func mKey(t time.Time) string { return "M" + t.Format("2006-01") }
func yKey(y int) string       { return "Y" + strconv.Itoa(y) }
func ycKey(y int) string      { return "YC" + strconv.Itoa(y) }
func mcKey(t time.Time) string {
	return "MC" + t.Format("2006-01")
}
func xKey(y int) string { return "X" + strconv.Itoa(y/10) }

// dateBuckets returns the bucket names of the interval [low, high].
func dateBuckets(low, high time.Time) []string {
	var out []string
	if low.Before(rangeLow) {
		out = append(out, "LO")
	}
	if high.After(rangeHigh) {
		out = append(out, "HI")
	}
	if high.Before(rangeLow) || low.After(rangeHigh) {
		return out
	}
	low, high = maxTime(low, rangeLow), minTime(high, rangeHigh)
	if high.Year()-low.Year()+1 > maxYears {
		return append(out, "W")
	}
	for y := low.Year(); y <= high.Year(); y++ {
		out = append(out, yKey(y))
		if y == low.Year() || y%10 == 0 {
			out = append(out, xKey(y))
		}
	}
	months := (high.Year()-low.Year())*12 + int(high.Month()) - int(low.Month()) + 1
	if months > maxMonths {
		for y := low.Year(); y <= high.Year(); y++ {
			out = append(out, ycKey(y))
		}
		return out
	}
	for m := monthStart(low); !m.After(high); m = m.AddDate(0, 1, 0) {
		out = append(out, mKey(m))
	}
	days := int(dayStart(high).Sub(dayStart(low)).Hours()/24) + 1
	if days > maxDays {
		for m := monthStart(low); !m.After(high); m = m.AddDate(0, 1, 0) {
			out = append(out, mcKey(m))
		}
		return out
	}
	for d := dayStart(low); !d.After(high); d = d.AddDate(0, 0, 1) {
		out = append(out, dKey(d))
	}
	return out
}

// dateCover returns bucket names whose union holds every value intersecting
// [low, high] (and possibly more). W is always included.
func dateCover(low, high time.Time) []string {
	out := []string{"W"}
	if low.Before(rangeLow) {
		out = append(out, "LO")
	}
	if high.After(rangeHigh) {
		out = append(out, "HI")
	}
	if high.Before(rangeLow) || low.After(rangeHigh) || high.Before(low) {
		return out
	}
	low, high = maxTime(low, rangeLow), minTime(high, rangeHigh)
	for y := low.Year(); y <= high.Year(); {
		ys, ye := yearStart(y), yearStart(y+1).Add(-time.Nanosecond)
		if y%10 == 0 && !ys.Before(low) && !yearStart(y+10).Add(-time.Nanosecond).After(high) {
			out = append(out, xKey(y))
			y += 10
			continue
		}
		if !ys.Before(low) && !ye.After(high) {
			out = append(out, yKey(y))
			y++
			continue
		}
		out = append(out, ycKey(y))
		for m := maxTime(ys, monthStart(low)); !m.After(minTime(ye, high)); m = m.AddDate(0, 1, 0) {
			me := m.AddDate(0, 1, 0).Add(-time.Nanosecond)
			if !m.Before(low) && !me.After(high) {
				out = append(out, mKey(m))
				continue
			}
			out = append(out, mcKey(m))
			for d := maxTime(m, dayStart(low)); !d.After(minTime(me, high)); d = d.AddDate(0, 0, 1) {
				out = append(out, dKey(d))
			}
		}
		y++
	}
	return out
}

// bucketKeys are the token inputs (kind, bucket) of buckets: a value's
// date or magnitude buckets when it is indexed, a range's cover when it
// is asked for.
func bucketKeys(kind string, buckets []string) [][]string {
	var out [][]string
	for _, b := range buckets {
		out = append(out, []string{kind, b})
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Number buckets: a number is indexed by sign and decimal magnitude at
// three levels - exponent ("E+2"), leading digit ("E+2:1") and two leading
// digits ("E+2:12") - plus "Z" for zero and "NL"/"NH" outside the magnitude
// range [1e-12, 1e16). A range query is covered by the coarsest buckets
// inside it, the partial ones and the out-of-range markers.
const (
	minExp = -12
	maxExp = 15
)

func sgn(neg bool) string {
	if neg {
		return "-"
	}
	return "+"
}

// mag returns the decimal exponent and two leading digits (10..99) of
// a > 0, from its shortest decimal form, so that it is monotonic in a.
func mag(a float64) (e, d2 int) {
	s := strconv.FormatFloat(a, 'e', -1, 64) // "1.2345e+02" or "5e-07"
	mant, exp, _ := strings.Cut(s, "e")
	e, _ = strconv.Atoi(exp)
	d2 = int(mant[0]-'0') * 10
	if len(mant) > 2 {
		d2 += int(mant[2] - '0')
	}
	return e, d2
}

// numBuckets returns the bucket names of the number f.
func numBuckets(f float64) []string {
	if f == 0 || math.IsNaN(f) {
		return []string{"Z"}
	}
	neg, a := f < 0, math.Abs(f)
	e, d2 := mag(a)
	switch {
	case e < minExp:
		return []string{"NL" + sgn(neg)}
	case e > maxExp:
		return []string{"NH" + sgn(neg)}
	}
	ek := "E" + sgn(neg) + strconv.Itoa(e)
	return []string{ek, ek + ":" + strconv.Itoa(d2/10), ek + ":" + strconv.Itoa(d2)}
}

// numCover returns bucket names whose union holds every number in [lo, hi].
func numCover(lo, hi float64) []string {
	var out []string
	if lo > hi {
		return nil
	}
	if lo <= 0 && hi >= 0 {
		out = append(out, "Z")
	}
	if hi > 0 {
		out = magCover(out, false, math.Max(lo, 0), hi)
	}
	if lo < 0 {
		out = magCover(out, true, math.Max(-hi, 0), -lo)
	}
	return out
}

// magCover covers magnitudes in [lo, hi] (0 <= lo <= hi) of one sign.
func magCover(out []string, neg bool, lo, hi float64) []string {
	s := sgn(neg)
	elo, dlo := minExp-1, 10
	if lo > 0 {
		elo, dlo = mag(lo)
	}
	ehi, dhi := maxExp, 99
	if !math.IsInf(hi, 1) {
		ehi, dhi = mag(hi)
	}
	if elo < minExp {
		out = append(out, "NL"+s)
		elo, dlo = minExp, 10
	}
	if ehi > maxExp {
		out = append(out, "NH"+s)
		ehi, dhi = maxExp, 99
	}
	for e := elo; e <= ehi; e++ {
		ek := "E" + s + strconv.Itoa(e)
		from, to := 10, 99
		if e == elo {
			from = dlo
		}
		if e == ehi {
			to = dhi
		}
		if from == 10 && to == 99 {
			out = append(out, ek)
			continue
		}
		for d := from / 10; d <= to/10; d++ {
			a, b := max(from, d*10), min(to, d*10+9)
			if a == d*10 && b == d*10+9 {
				out = append(out, ek+":"+strconv.Itoa(d))
				continue
			}
			for d2 := a; d2 <= b; d2++ {
				out = append(out, ek+":"+strconv.Itoa(d2))
			}
		}
	}
	return out
}
