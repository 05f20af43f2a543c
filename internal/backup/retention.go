package backup

import (
	"fmt"
	"sort"
	"time"
)

// Retention says how many snapshots to keep per calendar bucket, in the
// manner of restic's --keep-hourly/daily/weekly/monthly: going from the
// newest snapshot to the oldest, a snapshot is kept for a bucket kind when
// it is the newest one in a bucket (hour, day, ISO week, month) not seen
// yet, until that kind has kept its N buckets. The newest snapshot is
// always kept. Buckets are taken in UTC, so the result does not depend on
// the machine's time zone.
type Retention struct {
	Hourly, Daily, Weekly, Monthly int
}

// Validate reports a negative count, or a policy that keeps nothing but
// the newest snapshot (almost surely a mistake).
func (p Retention) Validate() error {
	if p.Hourly < 0 || p.Daily < 0 || p.Weekly < 0 || p.Monthly < 0 {
		return fmt.Errorf("backup: retention counts must not be negative")
	}
	if p.Hourly+p.Daily+p.Weekly+p.Monthly == 0 {
		return fmt.Errorf("backup: a retention policy must keep at least one hourly, daily, weekly or monthly snapshot")
	}
	return nil
}

// SnapshotTime is a snapshot's id and creation time, what retention needs.
type SnapshotTime struct {
	ID      string
	Created time.Time
}

// Decision is the outcome of a retention policy: the snapshots kept, each
// with the reasons it was kept ("newest", "hourly 2026-11-29T18", ...),
// and those to remove. Both are ordered newest first.
type Decision struct {
	Keep    []SnapshotTime
	Reasons map[string][]string
	Remove  []SnapshotTime
}

// Apply decides which snapshots p keeps. Ties in time order by id, so the
// decision is deterministic.
func (p Retention) Apply(snaps []SnapshotTime) Decision {
	s := append([]SnapshotTime(nil), snaps...)
	sort.Slice(s, func(i, j int) bool {
		if !s[i].Created.Equal(s[j].Created) {
			return s[i].Created.After(s[j].Created)
		}
		return s[i].ID > s[j].ID
	})
	kinds := []struct {
		name string
		n    int
		key  func(time.Time) string
	}{
		{"hourly", p.Hourly, func(t time.Time) string { return t.Format("2006-01-02T15") }},
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%04d-W%02d", y, w) }},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
	}
	last := make([]string, len(kinds))
	left := make([]int, len(kinds))
	for i, k := range kinds {
		left[i] = k.n
	}
	d := Decision{Reasons: map[string][]string{}}
	for i, sn := range s {
		t := sn.Created.UTC()
		var why []string
		if i == 0 {
			why = append(why, "newest")
		}
		for j, k := range kinds {
			b := k.key(t)
			if left[j] > 0 && b != last[j] {
				last[j] = b
				left[j]--
				why = append(why, k.name+" "+b)
			}
		}
		if len(why) > 0 {
			d.Keep = append(d.Keep, sn)
			d.Reasons[sn.ID] = why
		} else {
			d.Remove = append(d.Remove, sn)
		}
	}
	return d
}
