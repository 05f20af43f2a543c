package search

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/phivault/phivault/internal/store"
)

// storeSum is a digest of everything a search must leave as it is: every
// stored version (type, id, version, sequence, time, delete flag, sealed
// body), every metadata entry (wrapped keys and the like), and the index
// as the store answers it: for each type, the ids of all its resources,
// and for every token the engine computes from the current resources,
// the ids the store matches to it. Audit leaves are left out: every
// search, refused or not, appends one.
func (e *env) storeSum(ctx context.Context) string {
	e.t.Helper()
	h := sha256.New()
	current := map[string][]string{} // type -> ids of current, not deleted
	err := e.db.View(ctx, func(r store.Reader) error {
		vs, err := r.History(store.HistoryQuery{})
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, v := range vs {
			b := sha256.Sum256(v.Body)
			fmt.Fprintf(h, "v %s %s %d %d %d %t %x\n", v.Type, v.ID, v.VID, v.Seq, v.Updated.UnixMicro(), v.Deleted, b)
			if k := v.Type + "/" + v.ID; !seen[k] { // newest first
				seen[k] = true
				if !v.Deleted {
					current[v.Type] = append(current[v.Type], v.ID)
				}
			}
		}
		kvs, err := r.MetaPrefix("")
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			b := sha256.Sum256(kv.Value)
			fmt.Fprintf(h, "m %q %x\n", kv.Key, b)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	types := make([]string, 0, len(current))
	for typ := range current {
		types = append(types, typ)
	}
	sort.Strings(types)
	for _, typ := range types {
		all, err := e.rec.Match(ctx, store.MatchQuery{Type: typ})
		if err != nil {
			e.t.Fatal(err)
		}
		fmt.Fprintf(h, "t %s %v\n", typ, all)
		es, err := e.rec.ReadMany(ctx, typ, current[typ])
		if err != nil {
			e.t.Fatal(err)
		}
		toks := map[string]bool{}
		for _, en := range es {
			res, err := parseJSON(en.Body)
			if err != nil {
				e.t.Fatal(err)
			}
			ts, _, err := e.eng.Index(res)
			if err != nil {
				e.t.Fatal(err)
			}
			for _, tk := range ts {
				toks[string(tk)] = true
			}
		}
		keys := make([]string, 0, len(toks))
		for k := range toks {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ids, err := e.rec.Match(ctx, store.MatchQuery{Type: typ, All: [][]store.Token{{store.Token(k)}}})
			if err != nil {
				e.t.Fatal(err)
			}
			fmt.Fprintf(h, "k %x %v\n", k, ids)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
