package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimulateMonitorRunAlertsEval(t *testing.T) {
	dir := t.TempDir()
	sim, out := filepath.Join(dir, "sim"), filepath.Join(dir, "out")
	var so, se bytes.Buffer
	if code := run([]string{"simulate", "--seed", "5", "--users", "120", "--patients", "1500", "--days", "6", "--out", sim}, &so, &se); code != 0 {
		t.Fatalf("simulate: %d %s", code, se.String())
	}
	so.Reset()
	if code := run([]string{"monitor", "run", "--directory", filepath.Join(sim, "directory.ndjson"), "--access", filepath.Join(sim, "access.csv"), "--out", out}, &so, &se); code != 0 {
		t.Fatalf("monitor run: %d %s", code, se.String())
	}
	if !strings.Contains(so.String(), "explained") {
		t.Errorf("run output: %s", so.String())
	}
	so.Reset()
	if code := run([]string{"monitor", "alerts", "--format", "json", "--out", out}, &so, &se); code != 0 {
		t.Fatalf("monitor alerts: %d %s", code, se.String())
	}
	lines := strings.Split(strings.TrimSpace(so.String()), "\n")
	var a map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &a); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "case_id", "user_id", "patient_id", "rules", "score", "first_seen", "last_seen", "events", "reasons"} {
		if _, ok := a[k]; !ok {
			t.Errorf("alert lacks %q: %s", k, lines[0])
		}
	}
	so.Reset()
	if code := run([]string{"monitor", "eval", "--json", "--labels", filepath.Join(sim, "labels.csv"), "--out", out}, &so, &se); code != 0 {
		t.Fatalf("monitor eval: %d %s", code, se.String())
	}
	var rep struct {
		Recall float64 `json:"incident_recall"`
	}
	if err := json.Unmarshal(so.Bytes(), &rep); err != nil || rep.Recall < 0.8 {
		t.Errorf("eval: %v %s", err, so.String())
	}
}

func TestMonitorRunRejectsBadRows(t *testing.T) {
	dir := t.TempDir()
	dirFile, acc := filepath.Join(dir, "d.ndjson"), filepath.Join(dir, "a.csv")
	os.WriteFile(dirFile, []byte(`{"resourceType":"Patient","id":"p1"}`+"\n"), 0o644)
	os.WriteFile(acc, []byte("time,user_id,action,patient_id\n2026-01-05T10:00:00Z,u1,read,p1\nyesterday,u1,read,p1\n"), 0o644)
	var so, se bytes.Buffer
	code := run([]string{"monitor", "run", "--directory", dirFile, "--access", acc, "--out", filepath.Join(dir, "out")}, &so, &se)
	if code != exitPartial || !strings.Contains(se.String(), "line 3") {
		t.Fatalf("code %d, stderr %s", code, se.String())
	}
}
