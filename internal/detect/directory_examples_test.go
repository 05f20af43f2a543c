package detect

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/phivault/phivault/internal/corpus"
)

// TestDirectoryTakesR4Examples: every R4 example of a type the directory
// is built from loads, alone and all together, and each Patient among
// them is in the directory. A resource of a valid R4 shape the decoder
// does not expect (Location.address is one Address, not a list) would
// fail the whole load, and the detector would run without a directory.
func TestDirectoryTakesR4Examples(t *testing.T) {
	var all bytes.Buffer
	var patients []string
	n := 0
	corpus.Examples(t, func(name string, data []byte) bool {
		var head struct{ ResourceType, ID string }
		if json.Unmarshal(data, &head) != nil || !slices.Contains(directoryTypes, head.ResourceType) {
			return true
		}
		var line bytes.Buffer
		if err := json.Compact(&line, data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		line.WriteByte('\n')
		if _, err := LoadDirectory(bytes.NewReader(line.Bytes())); err != nil {
			t.Errorf("%s (%s): %v", name, head.ResourceType, err)
		}
		all.Write(line.Bytes())
		if head.ResourceType == "Patient" {
			patients = append(patients, head.ID)
		}
		n++
		return true
	})
	if n < 100 || len(patients) < 10 {
		t.Fatalf("only %d examples of the directory's types (%d Patients): is the corpus complete?", n, len(patients))
	}
	d, err := LoadDirectory(&all)
	if err != nil {
		t.Fatalf("all %d examples together: %v", n, err)
	}
	for _, id := range patients {
		if _, ok := d.patIdx[id]; !ok {
			t.Errorf("Patient/%s is not in the directory", id)
		}
	}
	t.Logf("%d examples of %d types, %d Patients", n, len(directoryTypes), len(patients))
}

// FuzzLoadDirectory: LoadDirectory never panics, and a directory it
// returns indexes each patient and user under its own id.
func FuzzLoadDirectory(f *testing.F) {
	f.Add([]byte(tinyDir))
	f.Add([]byte(`{"resourceType":"Location","id":"l","name":"Ward","address":{"line":["1 Way"]}}` + "\n" +
		`{"resourceType":"Patient","id":"p","address":[{"line":["1 Way"],"postalCode":"1"}],"deceasedBoolean":true}`))
	f.Add([]byte(`{"resourceType":"CareTeam","id":"c","subject":{"reference":"Patient/p"},"participant":[{"member":{"reference":"Practitioner/x"}}],"period":{"start":"2026"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := LoadDirectory(bytes.NewReader(data))
		if err != nil {
			return
		}
		for id, i := range d.patIdx {
			if d.Patients[i].ID != id {
				t.Fatalf("patIdx[%q] = %d holds %q", id, i, d.Patients[i].ID)
			}
		}
		for id, i := range d.staffIdx {
			if d.Staff[i].ID != id {
				t.Fatalf("staffIdx[%q] = %d holds %q", id, i, d.Staff[i].ID)
			}
		}
	})
}
