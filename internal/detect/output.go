package detect

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// Summary describes one batch run.
type Summary struct {
	Users            int         `json:"users"`
	Days             float64     `json:"days"`
	Events           int         `json:"events"`
	PatientAccesses  int         `json:"patient_accesses"`
	ExplainedDirect  float64     `json:"explained_direct"` // by encounter, appointment, care team, order or department
	Explained        float64     `json:"explained"`        // also counting hospital-wide roles' access to patients in care
	Alerts           int         `json:"alerts"`
	Cases            int         `json:"cases"`
	BreakGlassReview int         `json:"break_glass_explained_for_review"`
	Seconds          float64     `json:"seconds"`
	EventsPerSecond  float64     `json:"events_per_second"` // both passes
	PeakHeapMB       float64     `json:"peak_heap_mb"`
	Import           ImportStats `json:"import"`
}

// RunFiles runs the detector over a directory file and access logs and
// writes alerts.jsonl, cases.jsonl, pairs.csv and summary.json to out.
func RunFiles(directory string, access []string, out string) (Summary, error) {
	var sum Summary
	start := time.Now()
	f, err := os.Open(directory)
	if err != nil {
		return sum, err
	}
	dir, err := LoadDirectory(bufio.NewReaderSize(f, 1<<20))
	f.Close()
	if err != nil {
		return sum, err
	}
	return runBatch(dir, start, func(rd *Reader, fn func(*Event)) error {
		for _, path := range access {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			err = rd.Read(bufio.NewReaderSize(f, 1<<20), fn)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		return nil
	}, out)
}

// runBatch runs the detector over the events read calls fn for (once per
// pass, through rd) and writes the results to out.
func runBatch(dir *Directory, start time.Time, read func(rd *Reader, fn func(*Event)) error, out string) (Summary, error) {
	var sum Summary
	for _, s := range dir.Staff {
		if s.InDirectory {
			sum.Users++
		}
	}
	rd := NewReader(dir)
	passes := 0
	src := func(fn func(*Event)) error {
		passes++
		rd.Reset()
		return read(rd, fn)
	}
	e := NewEngine(dir)
	alerts, err := e.Run(src, func() []string { return rd.IPs })
	if err != nil {
		return sum, err
	}
	sum.Import = rd.Stats
	sum.Events = rd.Stats.Accepted
	if e.maxT >= e.minT {
		sum.Days = float64(e.maxT-e.minT) / day
	}
	sum.Alerts, sum.BreakGlassReview = len(alerts), e.reviews
	if err := os.MkdirAll(out, 0o755); err != nil {
		return sum, err
	}
	if err := writeJSONL(filepath.Join(out, "alerts.jsonl"), alerts); err != nil {
		return sum, err
	}
	cases := Cases(alerts)
	sum.Cases = len(cases)
	if err := writeJSONL(filepath.Join(out, "cases.jsonl"), cases); err != nil {
		return sum, err
	}
	if err := e.writePairs(filepath.Join(out, "pairs.csv"), &sum); err != nil {
		return sum, err
	}
	sum.Seconds = time.Since(start).Seconds()
	sum.EventsPerSecond = float64(sum.Events) / sum.Seconds
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	sum.PeakHeapMB = float64(ms.HeapSys) / (1 << 20)
	b, _ := json.MarshalIndent(sum, "", "  ")
	return sum, os.WriteFile(filepath.Join(out, "summary.json"), append(b, '\n'), 0o644)
}

// Case groups one user's alerts.
type Case struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Status    string    `json:"status"`
	Severity  string    `json:"severity"`
	Score     float64   `json:"score"`
	Alerts    []string  `json:"alerts"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// Cases groups alerts (highest score first) into one case per user.
func Cases(alerts []*Alert) []*Case {
	var out []*Case
	by := map[string]*Case{}
	for _, a := range alerts {
		c := by[a.UserID]
		if c == nil {
			c = &Case{ID: a.CaseID, UserID: a.UserID, Status: "new", Severity: a.Severity, Score: a.Score, FirstSeen: a.FirstSeen, LastSeen: a.LastSeen}
			by[a.UserID] = c
			out = append(out, c)
		}
		c.Alerts = append(c.Alerts, a.ID)
		if a.FirstSeen.Before(c.FirstSeen) {
			c.FirstSeen = a.FirstSeen
		}
		if a.LastSeen.After(c.LastSeen) {
			c.LastSeen = a.LastSeen
		}
	}
	return out
}

func writeJSONL[T any](path string, items []T) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writePairs writes every user-patient pair with its score, for ranking
// evaluation, and fills in the share of accesses explained.
func (e *Engine) writePairs(path string, sum *Summary) error {
	userAlerts := map[int32][]*Alert{}
	for _, a := range e.alerts {
		if a.PatientID == "" {
			userAlerts[a.user] = append(userAlerts[a.user], a)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "user_id,patient_id,first,last,events,explained,score")
	var direct, all, total int
	for k, pi := range e.pairIdx {
		u, p := int32(k>>32), int32(uint32(k))
		pa := &e.pairs[pi]
		explained := int(pa.direct)
		if e.groups[e.users[u].group].admin {
			explained += int(pa.inCare)
		}
		total += int(pa.events)
		direct += int(pa.direct)
		all += explained
		score := 0.0
		if da := e.users[u].days[int32(pa.first/day)]; da != nil {
			score = 0.3 * (1 - float64(explained)/float64(pa.events)) * (0.5 + 0.5*float64(da.anom))
		}
		if a := e.patientAlerts[k]; a != nil {
			score = max(score, a.Score)
		}
		for _, a := range userAlerts[u] {
			if pa.first >= a.first-600 && pa.first <= a.last+600 {
				score = max(score, a.Score*0.95)
			}
		}
		fmt.Fprintf(w, "%s,%s,%s,%s,%d,%d,%s\n", e.dir.Staff[u].ID, e.dir.Patients[p].ID,
			time.Unix(pa.first, 0).UTC().Format(time.RFC3339), time.Unix(pa.last, 0).UTC().Format(time.RFC3339),
			pa.events, explained, strconv.FormatFloat(score, 'f', 4, 64))
	}
	if total > 0 {
		sum.PatientAccesses = total
		sum.ExplainedDirect = float64(direct) / float64(total)
		sum.Explained = float64(all) / float64(total)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
