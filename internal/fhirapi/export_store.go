package fhirapi

// Export output at rest: NDJSON files sealed under the job's data key
// ("export/" + job) in the store's metadata, bound to job and position;
// removed with the key destroyed on cancel, expiry, shutdown, or (for a
// process that stopped) by the sweep once the job's deadline passed.

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// exportWriter gathers one resource type's NDJSON into sealed files.
type exportWriter struct {
	m    *exportManager
	a    *API
	j    *exportJob
	typ  string
	buf  []byte
	f    exportFile
	seen map[string]bool
}

func (w *exportWriter) add(ctx context.Context, e records.Entry) error {
	w.buf = append(append(w.buf, e.Body...), '\n')
	w.f.count++
	w.f.entities = append(w.f.entities, versionRef(e))
	if e.Patient != "" && !w.seen[e.Patient] {
		if w.seen == nil {
			w.seen = map[string]bool{}
		}
		w.seen[e.Patient] = true
		w.f.patients = append(w.f.patients, e.Patient)
	}
	if w.f.count >= exportFileMax {
		return w.flush(ctx)
	}
	return nil
}

// flush seals and stores the gathered file, if any.
func (w *exportWriter) flush(ctx context.Context) error {
	if w.f.count == 0 {
		return nil
	}
	w.j.mu.Lock()
	n := len(w.j.state.files)
	w.j.mu.Unlock()
	sealed, err := w.a.Export.Barrier.Seal(ctx, metaExport+w.j.id, exportContext(w.j.id, n), w.buf)
	if err != nil {
		return err
	}
	clear(w.buf)
	err = w.a.Records.Backend().Update(ctx, func(tx store.Writer) error {
		return tx.SetMeta(metaExport+w.j.id+"/"+strconv.Itoa(n), sealed)
	})
	if err != nil {
		return err
	}
	w.f.typ = w.typ
	w.j.mu.Lock()
	w.j.state.files = append(w.j.state.files, w.f)
	w.j.mu.Unlock()
	w.buf, w.f, w.seen = w.buf[:0], exportFile{}, nil
	return nil
}

// exportContext binds a sealed file to its job and position.
func exportContext(job string, n int) []byte { return barrier.Context("export", job, strconv.Itoa(n)) }

// open returns file n of j, decrypted.
func (m *exportManager) open(ctx context.Context, a *API, j *exportJob, n int) ([]byte, error) {
	var sealed []byte
	err := a.Records.Backend().View(ctx, func(r store.Reader) error {
		var err error
		sealed, err = r.Meta(metaExport + j.id + "/" + strconv.Itoa(n))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(http.StatusNotFound, "not-found", "no such export file")
	}
	if err != nil {
		return nil, err
	}
	return a.Export.Barrier.Open(ctx, exportContext(j.id, n), sealed)
}

// remove stops j, deletes its output and destroys its key. Idempotent.
func (m *exportManager) remove(ctx context.Context, a *API, j *exportJob) {
	j.mu.Lock()
	j.removing = true
	if j.timer != nil {
		j.timer.Stop()
	}
	cancel := j.cancel
	j.mu.Unlock()
	if cancel != nil {
		cancel()
		<-j.ended
	}
	if err := removeExportData(ctx, a, j.id); err != nil {
		a.Log.Error("export job: removing its output failed", "job", j.id, "err", err.Error())
	}
	m.mu.Lock()
	delete(m.jobs, j.id)
	m.mu.Unlock()
}

func removeExportData(ctx context.Context, a *API, id string) error {
	err := a.Records.Backend().Update(ctx, func(tx store.Writer) error {
		kvs, err := tx.MetaPrefix(metaExport + id + "/")
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			if err := tx.DeleteMeta(kv.Key); err != nil {
				return err
			}
		}
		return tx.DeleteMeta(metaExportJob + id)
	})
	if err != nil {
		return err
	}
	if _, err := a.Export.Barrier.Destroy(ctx, metaExport+id); err != nil && !errors.Is(err, barrier.ErrNoKey) {
		return err
	}
	return nil
}

// sweepExpired removes the output of jobs a stopped process left behind,
// once their deadline passed (jobs of other live nodes are left alone).
func (m *exportManager) sweepExpired(a *API) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var kvs []store.KV
	err := a.Records.Backend().View(ctx, func(r store.Reader) (err error) { kvs, err = r.MetaPrefix(metaExportJob); return err })
	if err != nil {
		a.Log.Error("export sweep failed", "err", err.Error())
		return
	}
	now := time.Now().Unix()
	for _, kv := range kvs {
		if d, err := strconv.ParseInt(string(kv.Value), 10, 64); err == nil && d > now {
			continue
		}
		if err := removeExportData(ctx, a, kv.Key[len(metaExportJob):]); err != nil {
			a.Log.Error("export sweep failed", "err", err.Error())
		}
	}
}
