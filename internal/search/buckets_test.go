package search

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func randTime(r *rand.Rand) time.Time {
	switch r.IntN(10) {
	case 0:
		return time.Date(1700+r.IntN(600), 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(366 * 24 * time.Hour))))
	default:
		return time.Date(1995+r.IntN(40), 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(366 * 24 * time.Hour))))
	}
}

func randSpan(r *rand.Rand) time.Duration {
	switch r.IntN(5) {
	case 0:
		return 0
	case 1:
		return time.Duration(r.Int64N(int64(48 * time.Hour)))
	case 2:
		return time.Duration(r.Int64N(int64(90 * 24 * time.Hour)))
	case 3:
		return time.Duration(r.Int64N(int64(3 * 365 * 24 * time.Hour)))
	}
	return time.Duration(r.Int64N(int64(80 * 365 * 24 * time.Hour)))
}

// Every value intersecting a query range shares a bucket with its cover.
func TestDateCoverHoldsEveryIntersectingValue(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		vl := randTime(r)
		vh := vl.Add(randSpan(r))
		ql := randTime(r)
		qh := ql.Add(randSpan(r))
		if r.IntN(8) == 0 {
			qh = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
		}
		if vh.Before(ql) || vl.After(qh) {
			continue
		}
		cover := map[string]bool{}
		for _, b := range dateCover(ql, qh) {
			cover[b] = true
		}
		ok := false
		for _, b := range dateBuckets(vl, vh) {
			ok = ok || cover[b]
		}
		if !ok {
			t.Fatalf("value [%v, %v] intersects [%v, %v] but shares no bucket:\n%v\n%v", vl, vh, ql, qh, dateBuckets(vl, vh), dateCover(ql, qh))
		}
		if n := len(dateCover(ql, qh)); n > 200 {
			t.Fatalf("cover of [%v, %v] has %d buckets", ql, qh, n)
		}
	}
}

func TestNumCoverHoldsEveryNumberInRange(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	rnd := func() float64 {
		f := math.Pow(10, r.Float64()*30-14) * float64(r.IntN(3)-1)
		if r.IntN(4) == 0 {
			f = math.Round(f)
		}
		return f
	}
	for i := 0; i < 50000; i++ {
		v, a, b := rnd(), rnd(), rnd()
		if a > b {
			a, b = b, a
		}
		if r.IntN(10) == 0 {
			b = math.Inf(1)
		}
		if v < a || v > b {
			continue
		}
		cover := map[string]bool{}
		for _, k := range numCover(a, b) {
			cover[k] = true
		}
		ok := false
		for _, k := range numBuckets(v) {
			ok = ok || cover[k]
		}
		if !ok {
			t.Fatalf("%g in [%g, %g] but shares no bucket: %v vs %v", v, a, b, numBuckets(v), numCover(a, b))
		}
	}
}
