package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

func testPutSequencing(t *testing.T, b *closer) {
	v1 := put(t, b, ver("Patient", "a", 1, "one"))
	if v1.Seq <= 0 {
		t.Fatalf("Put returned Seq %d, want > 0", v1.Seq)
	}
	for _, vid := range []int64{0, 1, 3, -1} {
		err := b.Update(context.Background(), func(w store.Writer) error {
			_, err := w.Put(ver("Patient", "a", vid, "bad"), nil)
			return err
		})
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("Put VID %d over VID 1: err = %v, want ErrConflict", vid, err)
		}
	}
	if err := b.Update(context.Background(), func(w store.Writer) error {
		_, err := w.Put(ver("Patient", "new", 2, "bad"), nil)
		return err
	}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Put VID 2 of a new resource: err = %v, want ErrConflict", err)
	}
	v2 := put(t, b, ver("Patient", "a", 2, "two"))
	other := put(t, b, ver("Observation", "a", 1, "obs"))
	if !(v1.Seq < v2.Seq && v2.Seq < other.Seq) {
		t.Errorf("Seq not increasing store-wide: %d, %d, %d", v1.Seq, v2.Seq, other.Seq)
	}
	if d := sameVersion(current(t, b, "Patient", "a"), v2); d != "" {
		t.Errorf("Current(Patient/a): %s", d)
	}
	if d := sameVersion(current(t, b, "Observation", "a"), other); d != "" {
		t.Errorf("Current(Observation/a): %s", d)
	}

	// A conflict is an ordinary error: fn may handle it and go on.
	update(t, b, func(w store.Writer) error {
		if _, err := w.Put(ver("Patient", "a", 2, "stale"), nil); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("stale Put: %v, want ErrConflict", err)
		}
		_, err := w.Put(ver("Patient", "a", 3, "three"), nil)
		return err
	})
	if got := current(t, b, "Patient", "a"); got.VID != 3 || string(got.Body) != "three" {
		t.Errorf("after handled conflict: VID %d body %q, want 3 \"three\"", got.VID, got.Body)
	}

	// Updated is kept to the microsecond and returned in UTC.
	loc := time.FixedZone("X", 5*3600+1800)
	when := time.Date(2025, 12, 31, 23, 59, 59, 999999000, loc)
	v := ver("Patient", "tz", 1, "x")
	v.Updated = when
	put(t, b, v)
	if got := current(t, b, "Patient", "tz"); !got.Updated.Equal(when) || got.Updated.Location() != time.UTC {
		t.Errorf("Updated = %v, want %v in UTC", got.Updated, when.UTC())
	}
}

// testPutConcurrent races many goroutines to write each next version of one
// resource; for every version exactly one of them may win.
func testPutConcurrent(t *testing.T, b *closer) {
	const workers, last = 24, 12
	var mu sync.Mutex
	winners := map[int64][]int{}
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for {
				var cur int64
				if err := b.View(context.Background(), func(r store.Reader) error {
					v, err := r.Current("Patient", "hot")
					if errors.Is(err, store.ErrNotFound) {
						return nil
					}
					cur = v.VID
					return err
				}); err != nil {
					t.Errorf("View: %v", err)
					return
				}
				if cur >= last {
					return
				}
				vid := cur + 1
				err := b.Update(context.Background(), func(w store.Writer) error {
					_, err := w.Put(ver("Patient", "hot", vid, fmt.Sprintf("g%d", g)), toks(fmt.Sprintf("v%d", vid)))
					return err
				})
				switch {
				case err == nil:
					mu.Lock()
					winners[vid] = append(winners[vid], g)
					mu.Unlock()
				case !errors.Is(err, store.ErrConflict):
					t.Errorf("Put: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for vid := int64(1); vid <= last; vid++ {
		w := winners[vid]
		if len(w) != 1 {
			t.Errorf("version %d: %d winners %v, want exactly 1", vid, len(w), w)
			continue
		}
		view(t, b, func(r store.Reader) error {
			v, err := r.Get("Patient", "hot", vid)
			if err != nil {
				return err
			}
			if want := fmt.Sprintf("g%d", w[0]); string(v.Body) != want {
				t.Errorf("version %d body %q, want winner's %q", vid, v.Body, want)
			}
			return nil
		})
	}
	if got := match(t, b, store.MatchQuery{Type: "Patient", All: [][]store.Token{toks(fmt.Sprintf("v%d", last))}}); !eqStrings(got, []string{"hot"}) {
		t.Errorf("Match latest token = %q, want [hot]", got)
	}
}

func testDeleteMarker(t *testing.T, b *closer) {
	v1 := put(t, b, ver("Patient", "d", 1, "alive"), toks("tok")...)
	del := put(t, b, store.Version{Type: "Patient", ID: "d", VID: 2, Updated: at(2), Deleted: true}, toks("tok")...)
	got := current(t, b, "Patient", "d")
	if d := sameVersion(got, del); d != "" || !got.Deleted || len(got.Body) != 0 {
		t.Errorf("Current after delete: %s (Deleted %v, body %d bytes)", d, got.Deleted, len(got.Body))
	}
	q := store.MatchQuery{Type: "Patient", All: [][]store.Token{toks("tok")}}
	if ids := match(t, b, q); len(ids) != 0 {
		t.Errorf("Match after delete = %q, want none (tokens cleared)", ids)
	}
	if ids := match(t, b, store.MatchQuery{Type: "Patient"}); len(ids) != 0 {
		t.Errorf("Match all after delete = %q, want none", ids)
	}
	view(t, b, func(r store.Reader) error {
		if n, err := r.Count(q); err != nil || n != 0 {
			t.Errorf("Count after delete = %d, %v; want 0", n, err)
		}
		old, err := r.Get("Patient", "d", 1)
		if d := sameVersion(old, v1); err != nil || d != "" {
			t.Errorf("Get old version after delete: %v %s", err, d)
		}
		return nil
	})
	// A new version after the marker brings the resource back.
	put(t, b, ver("Patient", "d", 3, "again"), toks("tok2")...)
	if ids := match(t, b, store.MatchQuery{Type: "Patient", All: [][]store.Token{toks("tok2")}}); !eqStrings(ids, []string{"d"}) {
		t.Errorf("Match after undelete = %q, want [d]", ids)
	}
}

func testGetOldVersions(t *testing.T, b *closer) {
	var want []store.Version
	for vid := int64(1); vid <= 3; vid++ {
		want = append(want, put(t, b, ver("Encounter", "e", vid, fmt.Sprintf("body %d", vid))))
	}
	view(t, b, func(r store.Reader) error {
		for _, w := range want {
			got, err := r.Get("Encounter", "e", w.VID)
			if err != nil {
				t.Errorf("Get %d: %v", w.VID, err)
			} else if d := sameVersion(got, w); d != "" {
				t.Errorf("Get %d: %s", w.VID, d)
			}
		}
		for _, c := range []struct {
			typ, id string
			vid     int64
		}{{"Encounter", "e", 4}, {"Encounter", "e", 0}, {"Encounter", "x", 1}, {"Patient", "e", 1}} {
			if _, err := r.Get(c.typ, c.id, c.vid); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%s, %s, %d): err = %v, want ErrNotFound", c.typ, c.id, c.vid, err)
			}
		}
		if _, err := r.Current("Encounter", "x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Current of missing resource: err = %v, want ErrNotFound", err)
		}
		return nil
	})
}

func testBigBody(t *testing.T, b *closer) {
	body := make([]byte, 8<<20)
	rand.Read(body)
	v := put(t, b, store.Version{Type: "Binary", ID: "big", VID: 1, Updated: at(1), Body: body})
	view(t, b, func(r store.Reader) error {
		got, err := r.Current("Binary", "big")
		if err != nil {
			return err
		}
		if d := sameVersion(got, v); d != "" {
			t.Errorf("Current: %s", d)
		}
		h, err := r.History(store.HistoryQuery{Type: "Binary", ID: "big"})
		if err != nil || len(h) != 1 || !bytes.Equal(h[0].Body, body) {
			t.Errorf("History of big body: %d versions, %v", len(h), err)
		}
		return nil
	})
}

// testUnusualIDs uses ids made of every valid FHIR id character
// ([A-Za-z0-9\-.], 1 to 64 characters); ids differing only in case are
// different resources.
func testUnusualIDs(t *testing.T, b *closer) {
	long := strings.Repeat("Az09-.", 11)[:64]
	ids := []string{"-", ".", "..", "0", "A", "a", "a.b-c", "ABC", "abc", long, "9" + long[1:]}
	for i, id := range ids {
		put(t, b, ver("Patient", id, 1, fmt.Sprintf("b%d", i)), toks("all")...)
	}
	for i, id := range ids {
		if got := current(t, b, "Patient", id); got.ID != id || string(got.Body) != fmt.Sprintf("b%d", i) {
			t.Errorf("Current(%q) = %q body %q", id, got.ID, got.Body)
		}
	}
	want := append([]string(nil), ids...)
	slices.Sort(want)
	if got := match(t, b, store.MatchQuery{Type: "Patient", All: [][]store.Token{toks("all")}}); !eqStrings(got, want) {
		t.Errorf("Match = %q, want %q (byte order)", got, want)
	}
}

// testCurrentMany: CurrentMany answers as Current does for each id, in the
// order asked, skipping missing ids and other types' resources, repeating
// repeated ids, delete markers included.
func testCurrentMany(t *testing.T, b *closer) {
	a2 := put(t, b, ver("Patient", "a", 1, "a1"))
	a2 = put(t, b, ver("Patient", "a", 2, "a2"))
	c1 := put(t, b, ver("Patient", "c", 1, "c1"))
	put(t, b, ver("Observation", "b", 1, "obs"))
	put(t, b, ver("Patient", "d", 1, "d1"))
	del := put(t, b, store.Version{Type: "Patient", ID: "d", VID: 2, Updated: at(2), Deleted: true})
	weird := put(t, b, ver("Patient", `x"],1,["y`, 1, "w"))
	view(t, b, func(r store.Reader) error {
		got, err := r.CurrentMany("Patient", []string{"c", "b", "d", "zz", "a", "c", `x"],1,["y`})
		if err != nil {
			t.Fatal(err)
		}
		want := []store.Version{c1, del, a2, c1, weird}
		if len(got) != len(want) {
			t.Fatalf("CurrentMany = %d versions, want %d", len(got), len(want))
		}
		for i := range want {
			if d := sameVersion(got[i], want[i]); d != "" {
				t.Errorf("CurrentMany[%d]: %s", i, d)
			}
		}
		if got, err := r.CurrentMany("Patient", nil); err != nil || len(got) != 0 {
			t.Errorf("CurrentMany of no ids = %d versions, %v", len(got), err)
		}
		return nil
	})
}
