package simulate

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func small(t *testing.T, seed uint64) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := Run(Config{Seed: seed, Users: 120, Patients: 1500, Days: 6}, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDeterministicPerSeed(t *testing.T) {
	a, b, c := small(t, 7), small(t, 7), small(t, 8)
	for _, f := range []string{"directory.ndjson", "access.csv", "labels.csv"} {
		x, _ := os.ReadFile(filepath.Join(a, f))
		y, _ := os.ReadFile(filepath.Join(b, f))
		z, _ := os.ReadFile(filepath.Join(c, f))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs with the same seed", f)
		}
		if bytes.Equal(x, z) {
			t.Errorf("%s is the same for seeds 7 and 8", f)
		}
	}
}

func TestAccessLogFormat(t *testing.T) {
	dir := small(t, 1)
	f, _ := os.Open(filepath.Join(dir, "access.csv"))
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	head, err := r.Read()
	if err != nil || strings.Join(head, ",") != Header {
		t.Fatalf("header = %v, %v", head, err)
	}
	actions := map[string]bool{}
	for _, a := range strings.Fields("read search create update delete print export login login-failed logout break-glass") {
		actions[a] = true
	}
	var prev time.Time
	n := 0
	for {
		rec, err := r.Read()
		if err != nil {
			break
		}
		n++
		ts, err := time.Parse(time.RFC3339, rec[0])
		if err != nil {
			t.Fatalf("row %d: time %q: %v", n, rec[0], err)
		}
		if ts.Before(prev) {
			t.Fatalf("row %d: out of order", n)
		}
		prev = ts
		if !actions[rec[2]] {
			t.Fatalf("row %d: action %q", n, rec[2])
		}
		if (rec[2] == "login" || rec[2] == "logout" || rec[2] == "login-failed") != (rec[3] == "") {
			t.Fatalf("row %d: patient %q with action %s", n, rec[3], rec[2])
		}
	}
	if n < 10000 {
		t.Fatalf("only %d events", n)
	}
}

func TestDirectoryAndLabels(t *testing.T) {
	dir := small(t, 3)
	b, _ := os.ReadFile(filepath.Join(dir, "directory.ndjson"))
	kinds := map[string]int{}
	linked, vip := 0, 0
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r struct {
			ResourceType string
			Identifier   []struct{ System, Value string }
			Meta         struct{ Security []struct{ Code string } }
		}
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		kinds[r.ResourceType]++
		if r.ResourceType == "Patient" {
			for _, id := range r.Identifier {
				if id.System == UserSystem {
					linked++
				}
			}
			if len(r.Meta.Security) > 0 {
				vip++
			}
		}
	}
	for _, k := range []string{"Practitioner", "PractitionerRole", "Patient", "Encounter", "Appointment", "CareTeam", "ServiceRequest", "MedicationRequest"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in the directory", k)
		}
	}
	if kinds["Practitioner"] != 120 || kinds["Patient"] != 1500 || linked == 0 || vip == 0 {
		t.Errorf("kinds %v, employees linked by identifier %d, restricted %d", kinds, linked, vip)
	}
	lb, _ := os.ReadFile(filepath.Join(dir, "labels.csv"))
	for _, s := range Scenarios {
		if !bytes.Contains(lb, []byte(","+s+",")) {
			t.Errorf("no %s incident in labels.csv", s)
		}
	}
}
