package search

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/store"
)

// reindexBatch is how many resources one reindex transaction rewrites: it
// holds the store's writer, so it is kept small enough that concurrent
// writes wait no longer than for a transaction bundle.
const reindexBatch = 100

// metaReindexed + type holds the store's change sequence when the last
// complete reindex of that type started (decimal): resources written
// before it carry the tokens of every custom parameter in use then.
const metaReindexed = "search/reindexed/"

// ReindexReport says what Reindex did.
type ReindexReport struct {
	Types     int   // resource types walked
	Resources int64 // current resources whose tokens were rebuilt
	Raced     int64 // resources written during the run (they indexed themselves)
	Skipped   int64 // resources deleted or erased during the run
}

// Reindex rebuilds the index tokens of every current resource of types
// (all resource types when empty) with the parameters in use: for custom
// SearchParameters added or changed since the resources were written, or
// after a change of the index. It runs online: reads go on throughout,
// and a resource written during the run keeps the tokens its own write
// computed (store.Writer.Reindex conflicts). Bodies are decrypted in
// memory only. progress, when not nil, is called after each batch.
func (e *Engine) Reindex(ctx context.Context, types []string, progress func(ReindexReport)) (ReindexReport, error) {
	if err := e.Refresh(ctx); err != nil {
		return ReindexReport{}, err
	}
	if len(types) == 0 {
		types = fhir.ResourceTypes()
	}
	var rep ReindexReport
	for _, typ := range types {
		if !e.params().IsResourceType(typ) {
			return rep, fmt.Errorf("search: reindex: %q is not a resource type", typ)
		}
		start, err := e.latestSeq(ctx, "")
		if err != nil {
			return rep, err
		}
		for after := ""; ; {
			ids, err := e.rec.Match(ctx, store.MatchQuery{Type: typ, After: after, Limit: reindexBatch})
			if err != nil {
				return rep, err
			}
			if len(ids) == 0 {
				break
			}
			after = ids[len(ids)-1]
			if err := e.reindexBatch(ctx, typ, ids, &rep); err != nil {
				return rep, err
			}
			if progress != nil {
				progress(rep)
			}
		}
		err = e.rec.Backend().Update(ctx, func(w store.Writer) error {
			return w.SetMeta(metaReindexed+typ, strconv.AppendInt(nil, start, 10))
		})
		if err != nil {
			return rep, err
		}
		rep.Types++
	}
	return rep, e.LoadParams(ctx)
}

func (e *Engine) reindexBatch(ctx context.Context, typ string, ids []string, rep *ReindexReport) error {
	ents, err := e.rec.ReadMany(ctx, typ, ids)
	if err != nil {
		return err
	}
	type job struct {
		id     string
		vid    int64
		tokens []store.Token
	}
	jobs := make([]job, 0, len(ents))
	for _, en := range ents {
		res, err := parseJSON(en.Body)
		if err != nil {
			return fmt.Errorf("search: reindex %s/%s: %w", typ, en.ID, err)
		}
		toks, _, err := e.index(typ, en.ID, res)
		if err != nil {
			return fmt.Errorf("search: reindex %s/%s: %w", typ, en.ID, err)
		}
		jobs = append(jobs, job{en.ID, en.VID, toks})
	}
	var done, raced int64
	err = e.rec.Backend().Update(ctx, func(w store.Writer) error {
		done, raced = 0, 0 // fn may run again
		for _, j := range jobs {
			err := w.Reindex(typ, j.id, j.vid, j.tokens)
			switch {
			case errors.Is(err, store.ErrConflict):
				raced++
			case err != nil:
				return err
			default:
				done++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	rep.Resources += done
	rep.Raced += raced
	rep.Skipped += int64(len(ids) - len(ents))
	return nil
}

// reindexedAt reads the change sequence at which each type's last
// complete reindex started.
func (e *Engine) reindexedAt(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := e.rec.Backend().View(ctx, func(r store.Reader) error {
		kvs, err := r.MetaPrefix(metaReindexed)
		for _, kv := range kvs {
			if n, err := strconv.ParseInt(string(kv.Value), 10, 64); err == nil {
				out[kv.Key[len(metaReindexed):]] = n
			}
		}
		return err
	})
	return out, err
}

// latestSeq is the change sequence of the newest version of typ (of any
// type when typ is ""); 0 when there is none.
func (e *Engine) latestSeq(ctx context.Context, typ string) (int64, error) {
	var seq int64
	err := e.rec.Backend().View(ctx, func(r store.Reader) error {
		vs, err := r.History(store.HistoryQuery{Type: typ, Limit: 1})
		if len(vs) > 0 {
			seq = vs[0].Seq
		}
		return err
	})
	return seq, err
}

// covered reports whether a reindex of typ began once the version with
// change sequence since (the parameter's definition) was written: every
// resource written before it was then reindexed.
func (s *customState) covered(typ string, since int64) bool {
	return s.reidx[typ] >= since
}

// bases returns the concrete types a parameter with base list applies to.
func bases(base []string) []string {
	if slices.Contains(base, "Resource") || slices.Contains(base, "DomainResource") {
		return fhir.ResourceTypes()
	}
	return base
}
