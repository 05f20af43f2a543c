package simulate

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Header is the access log's CSV header (the phivault import format).
const Header = "time,user_id,action,patient_id,user_name,user_role,department,resource_type,resource_id,source_ip,workstation,outcome"

// Stats says what a run wrote.
type Stats struct {
	Resources, Events, Labels int
}

// Run writes directory.ndjson, access.csv and labels.csv into dir.
func Run(cfg Config, dir string) (Stats, error) {
	var st Stats
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	}
	if cfg.IncidentRate == 0 {
		cfg.IncidentRate = 0.25
	}
	if err := cfg.Validate(); err != nil {
		return st, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, err
	}
	w := &world{cfg: cfg, r: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))}
	w.buildPopulation()
	w.buildEncounters()
	incidents, labels := w.planIncidents()
	if err := writeFile(filepath.Join(dir, "directory.ndjson"), w.writeDirectory); err != nil {
		return st, err
	}
	st.Labels = len(labels)
	if err := writeFile(filepath.Join(dir, "labels.csv"), func(f io.Writer) error { return writeLabels(f, labels) }); err != nil {
		return st, err
	}
	err := writeFile(filepath.Join(dir, "access.csv"), func(f io.Writer) error {
		n, err := w.writeAccess(f, incidents)
		st.Events = n
		return err
	})
	return st, err
}

func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeLabels(f io.Writer, labels []Label) error {
	cw := csv.NewWriter(f)
	cw.Write([]string{"user_id", "patient_id", "scenario", "start", "end"})
	for _, l := range labels {
		cw.Write([]string{l.User, l.Patient, l.Scenario, ts(l.Start), ts(l.End)})
	}
	cw.Flush()
	return cw.Error()
}

// writeAccess generates the log one day at a time; events that spill
// into the next day (night shifts) wait in pending until it is written.
func (w *world) writeAccess(f io.Writer, incidents map[int][]event) (int, error) {
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := csv.NewWriter(bw)
	fmt.Fprintln(bw, Header)
	var pending []event
	n := 0
	row := make([]string, 12)
	for day := 0; day <= w.cfg.Days; day++ {
		if day < w.cfg.Days {
			pending = w.legitDay(day, w.indexDay(day), pending)
			pending = append(pending, incidents[day]...)
		}
		sortEvents(pending)
		cut := w.date(day + 1)
		if day == w.cfg.Days {
			cut = cut.AddDate(1, 0, 0)
		}
		i := 0
		for ; i < len(pending) && pending[i].t.Before(cut); i++ {
			w.fillRow(row, &pending[i], n)
			if err := cw.Write(row); err != nil {
				return n, err
			}
			n++
		}
		pending = append(pending[:0], pending[i:]...)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

func (w *world) fillRow(row []string, e *event, n int) {
	u := &w.users[e.user]
	row[0] = ts(e.t)
	row[1] = u.id
	row[2] = e.action
	row[3] = ""
	row[7], row[8] = "", ""
	if e.patient >= 0 && e.action != "login" && e.action != "login-failed" && e.action != "logout" {
		row[3] = w.patients[e.patient].id
		row[7] = e.resType
		row[8] = e.resType[:3] + strconv.Itoa(n)
	}
	row[4] = u.given + " " + u.family
	row[5] = u.role
	row[6] = departments[e.dept].name
	row[9], row[10], row[11] = e.ip, e.ws, e.outcome
}
