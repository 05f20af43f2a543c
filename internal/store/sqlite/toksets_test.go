package sqlite

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

// carried runs Carried in a View of its own.
func carried(t *testing.T, be *Backend, ids []string, among []store.Token) map[string][]int {
	t.Helper()
	var got map[string][]int
	err := be.View(context.Background(), func(r store.Reader) (err error) {
		got, err = r.Carried("Patient", ids, among)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// yearTokens are the "years" 2000-2019 as tokens.
func yearTokens() []store.Token {
	var ts []store.Token
	for y := 2000; y < 2020; y++ {
		ts = append(ts, store.Token(fmt.Sprint("year:", y)))
	}
	return ts
}

// yearShaped is 300 resources, each in a patient and a year.
func yearShaped() map[string][]string {
	m := map[string][]string{}
	for i := range 300 {
		m[fmt.Sprintf("r%05d", i)] = []string{fmt.Sprintf("pat:%d", i/30), fmt.Sprintf("year:%d", 2000+i%20)}
	}
	return m
}

// TestKeptTokenSetsAnswerAsTheStore: Carried answers from the token sets
// it keeps in memory exactly as from SQLite (checked against a store that
// keeps none, for random ids, absent ones among them, and random subsets
// of the tokens asked about); a commit that puts a version with the same
// tokens keeps them, and one that changes tokens (an update, a delete, a
// reindex) drops them and the answers follow it.
func TestKeptTokenSetsAnswerAsTheStore(t *testing.T) {
	data := yearShaped()
	with, without := twinStores(t, data)

	r := rand.New(rand.NewPCG(3, 4))
	years := yearTokens()
	same := func() {
		t.Helper()
		var ids []string
		for range 1 + r.IntN(40) {
			ids = append(ids, fmt.Sprintf("r%05d", r.IntN(320))) // r00300 and up do not exist
		}
		among := slices.Clone(years)
		r.Shuffle(len(among), func(i, j int) { among[i], among[j] = among[j], among[i] })
		among = among[:1+r.IntN(len(among))]
		got, want := carried(t, with, ids, among), carried(t, without, ids, among)
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("Carried(%v, %s): kept sets %v, SQLite alone %v", ids, among, got, want)
		}
	}
	for range 200 {
		same()
	}
	if len(with.postings.toks.m) == 0 {
		t.Fatal("Carried kept no token set")
	}

	// A new version with the same tokens changes no idx row: the sets stay.
	putBoth(t, with, without, 2, map[string][]string{"r00001": data["r00001"]})
	if len(with.postings.toks.m) == 0 {
		t.Fatal("a version put with the same tokens dropped the kept token sets")
	}
	same()

	// r00002 moves to another year; r00003 is deleted; r00004 is reindexed
	// into another year.
	putBoth(t, with, without, 2, map[string][]string{"r00002": {"pat:0", "year:2019"}})
	for _, be := range []*Backend{with, without} {
		err := be.Update(context.Background(), func(w store.Writer) error {
			if _, err := w.Put(store.Version{Type: "Patient", ID: "r00003", VID: 2, Deleted: true}, nil); err != nil {
				return err
			}
			return w.Reindex("Patient", "r00004", 1, []store.Token{store.Token("pat:0"), store.Token("year:2018")})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(with.postings.toks.m) != 0 {
		t.Fatal("the kept token sets outlived a commit that changed the index")
	}
	ids := []string{"r00002", "r00003", "r00004"}
	for range 3 { // read from SQLite, then from the sets kept
		want := map[string][]int{"r00002": {19}, "r00004": {18}}
		if got := carried(t, with, ids, years); !maps.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("after the changes: %v, want %v", got, want)
		}
	}
	for range 200 {
		same()
	}
}

// TestKeptTokenSetsKeepTheSnapshot: a View that began before a commit that
// changed a resource's tokens keeps its snapshot's answer, though other
// Views keep the new token sets meanwhile.
func TestKeptTokenSetsKeepTheSnapshot(t *testing.T) {
	be := openBackend(t, t.TempDir())
	putMany(t, be, 1, yearShaped())
	ids, years := []string{"r00005", "r00006"}, yearTokens()
	before := carried(t, be, ids, years)
	err := be.View(context.Background(), func(r store.Reader) error {
		if got, err := r.Carried("Patient", ids, years); err != nil || !maps.EqualFunc(got, before, slices.Equal) {
			return fmt.Errorf("in the View before the commit: %v, %v", got, err)
		}
		putMany(t, be, 2, map[string][]string{"r00005": {"pat:0", "year:2019"}})
		after := carried(t, be, ids, years) // kept by another View
		if slices.Equal(after["r00005"], before["r00005"]) {
			return fmt.Errorf("the commit did not move r00005: %v", after)
		}
		if got, err := r.Carried("Patient", ids, years); err != nil || !maps.EqualFunc(got, before, slices.Equal) {
			return fmt.Errorf("in the View after the commit: %v, %v; its snapshot had %v", got, err, before)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := carried(t, be, ids, years); !slices.Equal(got["r00005"], []int{19}) {
		t.Fatalf("a View after the commit: %v, want r00005 in 2019", got)
	}
}
