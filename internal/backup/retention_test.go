package backup

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// every15 returns snapshots every 15 minutes for n steps, newest at end.
func every15(end time.Time, n int) []SnapshotTime {
	var s []SnapshotTime
	for i := n - 1; i >= 0; i-- {
		t := end.Add(-time.Duration(i) * 15 * time.Minute)
		s = append(s, SnapshotTime{ID: t.Format("0102T1504"), Created: t})
	}
	return s
}

func ids(s []SnapshotTime) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.ID)
	}
	return out
}

func TestRetentionBuckets(t *testing.T) {
	end := time.Date(2026, 11, 29, 18, 45, 0, 0, time.UTC) // a Sunday
	snaps := every15(end, 4*24*3)                          // three days, every 15 minutes
	cases := []struct {
		name string
		p    Retention
		keep []string
	}{
		{"hourly 3 keeps the last of each of the last three hours", Retention{Hourly: 3},
			[]string{"1129T1845", "1129T1745", "1129T1645"}},
		{"daily 2", Retention{Daily: 2}, []string{"1129T1845", "1128T2345"}},
		{"hourly and daily overlap on the newest", Retention{Hourly: 2, Daily: 3},
			[]string{"1129T1845", "1129T1745", "1128T2345", "1127T2345"}},
		// The three days all fall in ISO week 48 (Monday Nov 23 to Sunday Nov 29): one week, one snapshot.
		{"weekly 2", Retention{Weekly: 2}, []string{"1129T1845"}},
		{"monthly 1", Retention{Monthly: 1}, []string{"1129T1845"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.p.Apply(snaps)
			if diff := cmp.Diff(c.keep, ids(d.Keep)); diff != "" {
				t.Fatalf("kept (-want +got):\n%s", diff)
			}
			if len(d.Keep)+len(d.Remove) != len(snaps) {
				t.Fatalf("kept %d + removed %d != %d snapshots", len(d.Keep), len(d.Remove), len(snaps))
			}
		})
	}
}

func TestRetentionWeeklyMonthlyAcrossBoundaries(t *testing.T) {
	// One snapshot a day from 2026-09-20 to 2026-11-29.
	var snaps []SnapshotTime
	for d := time.Date(2026, 9, 20, 3, 0, 0, 0, time.UTC); !d.After(time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)); d = d.AddDate(0, 0, 1) {
		snaps = append(snaps, SnapshotTime{ID: d.Format("0102"), Created: d})
	}
	d := Retention{Weekly: 3, Monthly: 3}.Apply(snaps)
	// Weeks end on Sundays (ISO): Nov 29, Nov 22, Nov 15; months: Nov 29, Oct 31, Sep 30.
	want := []string{"1129", "1122", "1115", "1031", "0930"}
	if diff := cmp.Diff(want, ids(d.Keep)); diff != "" {
		t.Fatalf("kept (-want +got):\n%s", diff)
	}
	if got := d.Reasons["1129"]; fmt.Sprint(got) != "[newest weekly 2026-W48 monthly 2026-11]" {
		t.Fatalf("reasons for the newest: %v", got)
	}
}

func TestRetentionNewestAlwaysKeptAndOrderFree(t *testing.T) {
	a := SnapshotTime{ID: "a", Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := SnapshotTime{ID: "b", Created: a.Created.Add(time.Minute)}
	c := SnapshotTime{ID: "c", Created: a.Created.Add(2 * time.Minute)}
	d := Retention{Hourly: 1}.Apply([]SnapshotTime{b, c, a})
	if diff := cmp.Diff([]string{"c"}, ids(d.Keep)); diff != "" {
		t.Fatalf("kept (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b", "a"}, ids(d.Remove)); diff != "" {
		t.Fatalf("removed (-want +got):\n%s", diff)
	}
	// Times in another zone bucket by UTC.
	loc := time.FixedZone("x", 5*3600+1800)
	x := SnapshotTime{ID: "x", Created: time.Date(2026, 1, 1, 5, 20, 0, 0, loc)} // 23:50 UTC Dec 31
	y := SnapshotTime{ID: "y", Created: time.Date(2026, 1, 1, 5, 40, 0, 0, loc)} // 00:10 UTC Jan 1
	if got := ids(Retention{Daily: 2}.Apply([]SnapshotTime{x, y}).Keep); !cmp.Equal(got, []string{"y", "x"}) {
		t.Fatalf("UTC days: kept %v", got)
	}
}

func TestRetentionValidate(t *testing.T) {
	for _, p := range []Retention{{}, {Hourly: -1, Daily: 3}} {
		if p.Validate() == nil {
			t.Errorf("%+v: no error", p)
		}
	}
	if err := (Retention{Daily: 7}).Validate(); err != nil {
		t.Fatal(err)
	}
}
