package fhirapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// ExportConfig enables bulk export ($export).
type ExportConfig struct {
	// Barrier seals export output under a per-job data key ("export/" +
	// job id), destroyed when the job expires or is cancelled. nil: bulk
	// export is off and its endpoints answer 404.
	Barrier *barrier.Barrier
	// TTL is how long a finished job's files are kept (0: one hour).
	TTL time.Duration
	// Workers bounds the jobs that run at once (0: 2); others wait.
	Workers int
}

const (
	exportFileMax  = 10_000 // resources per output file
	exportMaxJobs  = 64     // jobs held at once (running, waiting or done)
	exportUserJobs = 16     // of which one user may hold
	exportReadSize = 256    // resources read per ReadMany
	exportMaxRun   = 6 * time.Hour
	metaExport     = "export/"    // + job + "/" + file -> sealed NDJSON
	metaExportJob  = "exportjob/" // + job -> unix deadline after which a sweep may remove it
)

// exportManager holds the export jobs of one API. Jobs live in memory; their
// output lives sealed in the store until removed. It is safe for concurrent
// use.
type exportManager struct {
	mu     sync.Mutex
	jobs   map[string]*exportJob
	sem    chan struct{}
	wg     sync.WaitGroup
	closed bool
	sweep  sync.Once
}

func newExportManager(c ExportConfig) *exportManager {
	n := c.Workers
	if n <= 0 {
		n = 2
	}
	return &exportManager{jobs: map[string]*exportJob{}, sem: make(chan struct{}, n)}
}

// exportJob is one export. Fields above mu are set before the job starts
// and never change.
type exportJob struct {
	id      string
	owner   policy.Principal
	purpose string
	request string
	level   string
	gate    string // the type the kick-off's export decision named ("" for system level)
	params  exportParams
	members map[string]bool
	started time.Time // the manifest's transactionTime
	cancel  context.CancelFunc
	ended   chan struct{} // closed when the job's goroutine returns

	mu       sync.Mutex
	state    exportState
	timer    *time.Timer
	removing bool
}

// exportFile describes one output file (its content stays sealed).
type exportFile struct {
	typ      string
	count    int
	patients []string
	entities []string
}

type exportState struct {
	done     bool
	failed   string // client-safe reason the job failed
	progress string
	files    []exportFile
	expires  time.Time
}

func (j *exportJob) snapshot() exportState {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.state
	s.files = append([]exportFile(nil), s.files...)
	return s
}

// reserve registers a new job for who, not yet started.
func (m *exportManager) reserve(who policy.Principal, purpose, request, level, gate string, p exportParams, members map[string]bool) (*exportJob, error) {
	var b [16]byte
	rand.Read(b[:])
	j := &exportJob{id: hex.EncodeToString(b[:]), owner: who, purpose: purpose, request: request, level: level, gate: gate,
		params: p, members: members, started: time.Now(), ended: make(chan struct{})}
	j.state.progress = "waiting"
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errorf(http.StatusServiceUnavailable, "transient", "the server is shutting down")
	}
	mine := 0
	for _, o := range m.jobs {
		if o.owner.UserID == who.UserID {
			mine++
		}
	}
	if len(m.jobs) >= exportMaxJobs || mine >= exportUserJobs {
		return nil, errorf(http.StatusTooManyRequests, "throttled", "too many export jobs; cancel finished ones (DELETE their status URL) or try again later")
	}
	m.jobs[j.id] = j
	return j, nil
}

// release forgets a reserved job that never started.
func (m *exportManager) release(j *exportJob) {
	m.mu.Lock()
	delete(m.jobs, j.id)
	m.mu.Unlock()
}

// get returns the job id if who started it (same user and session or
// token family), else nil.
func (m *exportManager) get(id string, who policy.Principal) *exportJob {
	m.mu.Lock()
	j := m.jobs[id]
	m.mu.Unlock()
	if j == nil || who.UserID == "" ||
		subtle.ConstantTimeCompare([]byte(j.owner.UserID), []byte(who.UserID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(j.owner.SessionID), []byte(who.SessionID)) != 1 {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.removing {
		return nil
	}
	return j
}

// start runs j in the background, at most Workers at a time.
func (m *exportManager) start(a *API, j *exportJob) {
	m.sweep.Do(func() { m.sweepExpired(a) })
	ctx, cancel := context.WithTimeout(context.Background(), exportMaxRun)
	j.mu.Lock()
	if j.removing { // cancelled (or the API closed) before it started
		j.mu.Unlock()
		cancel()
		return
	}
	j.cancel = cancel
	m.wg.Add(1)
	j.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer close(j.ended)
		defer cancel()
		select {
		case m.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		err := m.run(ctx, a, j)
		<-m.sem
		ttl := a.Export.TTL
		if ttl <= 0 {
			ttl = time.Hour
		}
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.removing {
			return
		}
		if err != nil {
			a.Log.Error("export job failed", "job", j.id, "err", err.Error())
			j.state.failed = "the export failed; start it again"
		}
		j.state.done, j.state.progress = true, "done"
		j.state.expires = time.Now().Add(ttl)
		j.timer = time.AfterFunc(ttl, func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			m.remove(ctx, a, j)
		})
	}()
}

// run collects, decides and seals the job's resources.
func (m *exportManager) run(ctx context.Context, a *API, j *exportJob) error {
	st := a.Records.Backend()
	deadline := strconv.FormatInt(time.Now().Add(exportMaxRun+24*time.Hour).Unix(), 10)
	if err := st.Update(ctx, func(w store.Writer) error { return w.SetMeta(metaExportJob+j.id, []byte(deadline)) }); err != nil {
		return err
	}
	types := j.params.Types
	if len(types) == 0 {
		types = fhir.ResourceTypes()
	}
	withheld := 0
	for ti, typ := range types {
		j.mu.Lock()
		j.state.progress = fmt.Sprintf("%d of %d resource types", ti, len(types))
		j.mu.Unlock()
		ids, err := a.Records.Match(ctx, store.MatchQuery{Type: typ})
		if err != nil {
			return err
		}
		out := exportWriter{m: m, a: a, j: j, typ: typ}
		for i := 0; i < len(ids); i += exportReadSize {
			es, err := a.Records.ReadMany(ctx, typ, ids[i:min(i+exportReadSize, len(ids))])
			if err != nil {
				return err
			}
			for _, e := range es {
				if !j.wants(e) {
					continue
				}
				if !a.Policy.Decide(ctx, exportRequest(j, e)).Allow {
					withheld++
					continue
				}
				if err := out.add(ctx, e); err != nil {
					return err
				}
			}
		}
		if err := out.flush(ctx); err != nil {
			return err
		}
	}
	if withheld > 0 {
		oo, _ := json.Marshal(map[string]any{"resourceType": "OperationOutcome", "issue": []any{map[string]any{
			"severity": "warning", "code": "forbidden",
			"diagnostics": fmt.Sprintf("%d resources were withheld: the requester may not export them", withheld)}}})
		out := exportWriter{m: m, a: a, j: j, typ: "OperationOutcome"}
		out.buf, out.f.count = append(oo, '\n'), 1
		return out.flush(ctx)
	}
	return nil
}

// wants reports whether e is in the job's scope (level, members, _since).
func (j *exportJob) wants(e records.Entry) bool {
	if !j.params.Since.IsZero() && e.Updated.Before(j.params.Since) {
		return false
	}
	switch j.level {
	case levelPatient:
		return e.Patient != ""
	case levelGroup:
		return j.members[e.Patient]
	}
	return true
}

// Close stops every export job and removes their output. Call it when the
// server stops; the API serves no export afterwards.
func (a *API) Close() {
	m := a.exports
	m.mu.Lock()
	m.closed = true
	jobs := make([]*exportJob, 0, len(m.jobs))
	for _, j := range m.jobs {
		jobs = append(jobs, j)
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, j := range jobs {
		m.remove(ctx, a, j)
	}
	m.wg.Wait()
}
