package main

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"
)

// TestClusterErase: two nodes on one PostgreSQL both hold a patient's data
// key in their caches; the patient is erased through one node's admin
// socket. That node refuses the data at once; the other stops returning it
// without a restart, as soon as the PostgreSQL notification of the
// destruction marker reaches it (its periodic listing, every 2 s, is the
// fallback).
func TestClusterErase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs two servers on PostgreSQL")
	}
	c := newCluster(t, 2)
	ctx := context.Background()
	for _, r := range []struct{ path, body string }{
		{"/fhir/Patient/pat1", `{"resourceType":"Patient","id":"pat1","name":[{"family":"Zebedeeshred"}]}`},
		{"/fhir/Observation/obs1", `{"resourceType":"Observation","id":"obs1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pat1"},"valueString":"glucose-note-shred"}`},
	} {
		if _, st, _, b, err := c.do(ctx, 0, http.MethodPut, r.path, []byte(r.body)); err != nil || st >= 300 {
			t.Fatalf("PUT %s: %d %v %s", r.path, st, err, b)
		}
	}
	shows := func(i int) bool {
		for _, p := range []string{"/fhir/Patient/pat1", "/fhir/Observation/obs1", "/fhir/Observation?subject=Patient/pat1"} {
			_, st, _, b, err := c.do(ctx, i, http.MethodGet, p, nil)
			if err != nil {
				t.Fatalf("node %d GET %s: %v", i, p, err)
			}
			if st >= 500 {
				t.Errorf("node %d GET %s: %d %s", i, p, st, b)
			}
			if bytes.Contains(b, []byte("Zebedeeshred")) || bytes.Contains(b, []byte("glucose-note-shred")) {
				return true
			}
		}
		return false
	}
	if !shows(0) || !shows(1) {
		t.Fatal("control: the patient is not readable on both nodes before the erasure")
	}
	out, err := c.cli("", "patient", "erase", "--data", c.dirs[0], "pat1", "--reason", "cluster test", "--yes")
	if err != nil {
		t.Fatalf("erase through node 0's socket: %v\n%s", err, out)
	}
	erased := time.Now()
	if shows(0) {
		t.Error("node 0 still returns the erased patient's data")
	}
	deadline := erased.Add(30 * time.Second) // a failure bound, not a measurement
	for shows(1) {
		if time.Now().After(deadline) {
			t.Fatal("node 1 still returns the erased patient's data 30 s after the erasure")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("node 1 stopped returning the erased patient's data within %s of the erase command's return (checks on node 0 included)", time.Since(erased).Round(time.Millisecond))
}
