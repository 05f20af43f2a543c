package records

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

// CheckReport is the outcome of Check. Problems name a version by type, id
// and version id and say what is wrong with it; they never quote content.
type CheckReport struct {
	Versions  int64 // versions read (delete markers included)
	Resources int64 // distinct resources
	Deleted   int64 // delete markers
	Erased    int64 // versions sealed under a destroyed (crypto-shredded) key: unreadable by design
	// Problems are the first problems found (at most the limit given to
	// Check); ProblemCount counts all of them.
	Problems     []Problem
	ProblemCount int64
}

// OK reports whether the check found nothing wrong.
func (r *CheckReport) OK() bool { return r.ProblemCount == 0 }

// Problem is one integrity failure.
type Problem struct {
	Type, ID string
	VID      int64
	What     string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s/%s/_history/%d: %s", p.Type, p.ID, p.VID, p.What)
}

// checkPage is how many versions Check reads per snapshot.
const checkPage = 1000

// resourceState is what Check remembers of a resource while it walks the
// history newest first.
type resourceState struct {
	newest   int64 // the newest version id seen (the first seen)
	next     int64 // version id of the last version seen (the next newer one)
	count    int64
	nextGone bool // the next newer version is a delete marker
}

// Check walks every stored version of every resource (the system history,
// newest first, paged by sequence) and verifies that each one opens through
// the barrier (authenticates under its key and its tenant/type/id/version
// binding), that its body is JSON whose resourceType, id and meta.versionId
// (and meta.lastUpdated) are the stored ones, that versions are numbered
// 1..n without gaps, that delete markers carry no body and never follow a
// delete marker, and that each resource's current pointer names its newest
// version. It returns an error only when the walk itself fails (the backend,
// the key provider, ctx); integrity failures are Problems in the report.
// It is meant for a store no one writes while it runs.
func (s *Store) Check(ctx context.Context, maxProblems int, progress func(versions int64)) (*CheckReport, error) {
	rep := &CheckReport{}
	problem := func(typ, id string, vid int64, what string) {
		rep.ProblemCount++
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, Problem{Type: typ, ID: id, VID: vid, What: what})
		}
	}
	seen := map[[2]string]*resourceState{}
	before := int64(0)
	for {
		var page []store.Version
		current := map[[2]string]store.Version{}
		err := s.st.View(ctx, func(r store.Reader) error {
			var err error
			if page, err = r.History(store.HistoryQuery{BeforeSeq: before, Limit: checkPage}); err != nil {
				return err
			}
			for _, v := range page {
				k := [2]string{v.Type, v.ID}
				if _, ok := seen[k]; ok {
					continue
				}
				if _, ok := current[k]; ok {
					continue
				}
				cur, err := r.Current(v.Type, v.ID)
				if errors.Is(err, store.ErrNotFound) {
					cur = store.Version{VID: -1}
				} else if err != nil {
					return err
				}
				current[k] = cur
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("records: check: %w", err)
		}
		if len(page) == 0 {
			return rep, finish(rep, seen, problem)
		}
		for _, v := range page {
			if before != 0 && v.Seq >= before {
				problem(v.Type, v.ID, v.VID, fmt.Sprintf("history is out of sequence order (seq %d after %d)", v.Seq, before))
			}
			before = v.Seq
			rep.Versions++
			k := [2]string{v.Type, v.ID}
			st := seen[k]
			if st == nil {
				st = &resourceState{newest: v.VID, next: v.VID + 1}
				seen[k] = st
				rep.Resources++
				if cur := current[k]; cur.VID != v.VID || cur.Seq != v.Seq {
					problem(v.Type, v.ID, v.VID, fmt.Sprintf("the current pointer names version %d, not the newest stored version", cur.VID))
				}
			}
			if v.VID != st.next-1 {
				problem(v.Type, v.ID, v.VID, fmt.Sprintf("version %d follows version %d: versions are not numbered without gaps", v.VID, st.next))
			}
			st.count++
			erased, err := s.checkVersion(ctx, v, st, problem)
			if erased {
				rep.Erased++
			}
			if err != nil {
				return rep, err
			}
			if v.Deleted {
				rep.Deleted++
			}
			st.next, st.nextGone = v.VID, v.Deleted
		}
		if progress != nil {
			progress(rep.Versions)
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
}

// checkVersion opens one version and checks its body against where it is
// stored. It returns an error only for failures that are not the data's
// fault (a destroyed key is reported as a problem: the data is gone).
// It reports erased for a version whose data key was destroyed on purpose.
func (s *Store) checkVersion(ctx context.Context, v store.Version, st *resourceState, problem func(string, string, int64, string)) (erased bool, err error) {
	if v.Deleted {
		if len(v.Body) != 0 {
			problem(v.Type, v.ID, v.VID, "a delete marker carries a body")
		}
		if st.nextGone {
			problem(v.Type, v.ID, v.VID+1, "a delete marker follows a delete marker")
		}
		return false, nil
	}
	e, err := s.open(ctx, v)
	switch {
	case errors.Is(err, barrier.ErrKeyDestroyed):
		return true, nil
	case errors.Is(err, ErrIntegrity):
		problem(v.Type, v.ID, v.VID, "does not decrypt and authenticate: "+describe(err))
		return false, nil
	case err != nil:
		return false, fmt.Errorf("records: check: %w", err)
	}
	var body struct {
		ResourceType *string `json:"resourceType"`
		ID           *string `json:"id"`
		Meta         *struct {
			VersionID   *string `json:"versionId"`
			LastUpdated *string `json:"lastUpdated"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(e.Body, &body); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			problem(v.Type, v.ID, v.VID, fmt.Sprintf("the body is not valid JSON (at byte %d)", se.Offset))
		} else {
			problem(v.Type, v.ID, v.VID, "the body is not a JSON object with string resourceType, id and meta.versionId")
		}
		return false, nil
	}
	switch {
	case body.ResourceType == nil || *body.ResourceType != v.Type:
		problem(v.Type, v.ID, v.VID, "the body's resourceType is not the stored type")
	case body.ID == nil || *body.ID != v.ID:
		problem(v.Type, v.ID, v.VID, "the body's id is not the stored id")
	case body.Meta == nil || body.Meta.VersionID == nil || *body.Meta.VersionID != strconv.FormatInt(v.VID, 10):
		problem(v.Type, v.ID, v.VID, "the body's meta.versionId is not the stored version id")
	case body.Meta.LastUpdated == nil || !sameInstant(*body.Meta.LastUpdated, v.Updated):
		problem(v.Type, v.ID, v.VID, "the body's meta.lastUpdated is not the stored time")
	}
	return false, nil
}

// finish checks what only the whole walk shows: every resource's versions
// reach down to version 1.
func finish(rep *CheckReport, seen map[[2]string]*resourceState, problem func(string, string, int64, string)) error {
	for k, st := range seen {
		if st.next != 1 || st.count != st.newest {
			problem(k[0], k[1], st.next-1, fmt.Sprintf("%d versions stored for newest version %d: earlier versions are missing", st.count, st.newest))
		}
	}
	return nil
}

func sameInstant(s string, t time.Time) bool {
	u, err := time.Parse(time.RFC3339Nano, s)
	return err == nil && u.Equal(t)
}

// describe names the kind of failure without quoting any content.
func describe(err error) string {
	switch {
	case errors.Is(err, barrier.ErrKeyDestroyed):
		return "its data key was destroyed"
	default:
		return "authentication failed or the envelope is damaged"
	}
}
