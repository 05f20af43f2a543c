package storetest

import (
	"testing"

	"github.com/phivault/phivault/internal/store"
)

// historyFixture writes, in this order (one Update each, Updated = at(i)):
// Patient/a 1, Patient/b 1, Observation/x 1, Patient/a 2, Observation/x 2,
// Patient/b 2 (delete marker), Patient/a 3. It returns them in write order.
func historyFixture(t *testing.T, b store.Backend) []store.Version {
	steps := []store.Version{
		{Type: "Patient", ID: "a", VID: 1},
		{Type: "Patient", ID: "b", VID: 1},
		{Type: "Observation", ID: "x", VID: 1},
		{Type: "Patient", ID: "a", VID: 2},
		{Type: "Observation", ID: "x", VID: 2},
		{Type: "Patient", ID: "b", VID: 2, Deleted: true},
		{Type: "Patient", ID: "a", VID: 3},
	}
	var out []store.Version
	for i, v := range steps {
		v.Updated = at(i)
		if !v.Deleted {
			v.Body = []byte(v.Type + "/" + v.ID + "/" + string(rune('0'+v.VID)))
		}
		out = append(out, put(t, b, v))
	}
	return out
}

// pick returns the fixture versions at the given write positions, newest
// first, as History must.
func pick(all []store.Version, pos ...int) []store.Version {
	var out []store.Version
	for i := len(pos) - 1; i >= 0; i-- {
		out = append(out, all[pos[i]])
	}
	return out
}

func checkHistory(t *testing.T, b store.Backend, q store.HistoryQuery, want []store.Version) {
	t.Helper()
	view(t, b, func(r store.Reader) error {
		got, err := r.History(q)
		if err != nil {
			t.Errorf("History(%+v): %v", q, err)
			return nil
		}
		if len(got) != len(want) {
			t.Errorf("History(%+v): %d versions, want %d", q, len(got), len(want))
			return nil
		}
		for i := range got {
			if d := sameVersion(got[i], want[i]); d != "" {
				t.Errorf("History(%+v)[%d]: %s", q, i, d)
			}
		}
		return nil
	})
}

func testHistory(t *testing.T, b *closer) {
	all := historyFixture(t, b)
	checkHistory(t, b, store.HistoryQuery{Type: "Patient", ID: "a"}, pick(all, 0, 3, 6))
	checkHistory(t, b, store.HistoryQuery{Type: "Patient", ID: "b"}, pick(all, 1, 5))
	checkHistory(t, b, store.HistoryQuery{Type: "Patient"}, pick(all, 0, 1, 3, 5, 6))
	checkHistory(t, b, store.HistoryQuery{Type: "Observation"}, pick(all, 2, 4))
	checkHistory(t, b, store.HistoryQuery{}, pick(all, 0, 1, 2, 3, 4, 5, 6))
	checkHistory(t, b, store.HistoryQuery{Since: at(3)}, pick(all, 3, 4, 5, 6))
	checkHistory(t, b, store.HistoryQuery{Type: "Patient", Since: at(3)}, pick(all, 3, 5, 6))
	checkHistory(t, b, store.HistoryQuery{Type: "Patient", ID: "a", Since: at(7)}, nil)
	checkHistory(t, b, store.HistoryQuery{Limit: 2}, pick(all, 5, 6))
	checkHistory(t, b, store.HistoryQuery{BeforeSeq: all[3].Seq}, pick(all, 0, 1, 2))
	checkHistory(t, b, store.HistoryQuery{Type: "Patient", BeforeSeq: all[6].Seq, Limit: 2}, pick(all, 3, 5))
	checkHistory(t, b, store.HistoryQuery{Type: "Patient", ID: "none"}, nil)
	checkHistory(t, b, store.HistoryQuery{Type: "Nothing"}, nil)
	view(t, b, func(r store.Reader) error {
		if _, err := r.History(store.HistoryQuery{ID: "a"}); err == nil {
			t.Errorf("History with an id but no type: no error")
		}
		return nil
	})
}

// testHistoryPaging walks every scope page by page with BeforeSeq and
// checks each version comes exactly once, newest first.
func testHistoryPaging(t *testing.T, b *closer) {
	var all []store.Version
	for round := int64(1); round <= 7; round++ {
		update(t, b, func(w store.Writer) error {
			for _, typ := range []string{"Patient", "Observation"} {
				for _, id := range []string{"p", "q", "r"} {
					v, err := w.Put(store.Version{Type: typ, ID: id, VID: round, Updated: at(int(round)), Body: []byte(typ + id)}, nil)
					if err != nil {
						return err
					}
					all = append(all, v)
				}
			}
			return nil
		})
	}
	scopes := []store.HistoryQuery{{}, {Type: "Patient"}, {Type: "Observation", ID: "q"}, {Since: at(4)}}
	for _, scope := range scopes {
		var want []store.Version
		for i := len(all) - 1; i >= 0; i-- {
			v := all[i]
			if (scope.Type == "" || v.Type == scope.Type) && (scope.ID == "" || v.ID == scope.ID) && !v.Updated.Before(scope.Since) {
				want = append(want, v)
			}
		}
		for _, limit := range []int{1, 4, 5, 100} {
			var got []store.Version
			q := scope
			q.Limit = limit
			for page := 0; ; page++ {
				if page > len(all)+1 {
					t.Fatalf("scope %+v limit %d: paging does not end", scope, limit)
				}
				var vs []store.Version
				view(t, b, func(r store.Reader) error {
					var err error
					vs, err = r.History(q)
					return err
				})
				if len(vs) > limit {
					t.Fatalf("scope %+v: page of %d, limit %d", scope, len(vs), limit)
				}
				got = append(got, vs...)
				if len(vs) < limit {
					break
				}
				q.BeforeSeq = vs[len(vs)-1].Seq
			}
			if len(got) != len(want) {
				t.Errorf("scope %+v limit %d: %d versions, want %d", scope, limit, len(got), len(want))
				continue
			}
			for i := range got {
				if got[i].Seq != want[i].Seq {
					t.Errorf("scope %+v limit %d: [%d] Seq %d, want %d", scope, limit, i, got[i].Seq, want[i].Seq)
					break
				}
			}
		}
	}
}
