package detect

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// FuzzParseLeaf: any bytes either fail to parse or give an event the
// rules can run on without panicking; a leaf made by audit.Event.Leaf
// reads back as recorded.
func FuzzParseLeaf(f *testing.F) {
	addLeafSeeds(f)
	f.Add([]byte(`{"resourceType":"AuditEvent","recorded":"2026-01-01T00:00:00Z","entity":[{"what":{"reference":"Patient/"},"type":{"code":"1"}}]}`))
	f.Add([]byte(`{"resourceType":"AuditEvent"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, leaf []byte) {
		ev, err := parseLeaf(7, leaf)
		if err != nil {
			return
		}
		if ev.Index != 7 || ev.T.Location() != time.UTC {
			t.Fatalf("parsed %+v", ev)
		}
		s := newLiveState(nil)
		s.apply(&ev)
		s.apply(&ev)
	})
}

func TestParseLeafRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 1, 10, 0, 0, 123, time.UTC)
	tests := []struct {
		ev   audit.Event
		want liveEvent
	}{
		{audit.Event{Time: at, Interaction: "read", Outcome: "0", Allowed: true, UserID: "u1", SourceIP: "10.0.0.1",
			Patients: []string{"p1", "p2"}, Entities: []string{"Patient/p3"}, Policies: []string{"clinical-care"}},
			liveEvent{Index: 3, T: at, Interaction: "read", User: "u1", SourceIP: "10.0.0.1", Patients: []string{"p1", "p2"}, Outcome: "0", Allowed: true}},
		{audit.Event{Time: at, Interaction: "search-type", Outcome: "4", UserID: "u2", Patients: []string{"p1"}, Policies: []string{"default-deny"}},
			liveEvent{Index: 3, T: at, Interaction: "search-type", User: "u2", Patients: []string{"p1"}, Outcome: "4"}},
		{audit.Event{Time: at, Interaction: "read", Outcome: "0", Allowed: true, UserID: "u3", Patients: []string{"p1"}, Policies: []string{"break-the-glass", "clinical-care"}},
			liveEvent{Index: 3, T: at, Interaction: "read", User: "u3", Patients: []string{"p1"}, Outcome: "0", Allowed: true, BreakGlass: true}},
		{audit.Event{Time: at, Interaction: "break-glass", Outcome: "0", Allowed: true, UserID: "u4", BreakGlass: true,
			OutcomeDesc: "break-the-glass opened: emergency-treatment until 2026-01-01T11:00:00Z"},
			liveEvent{Index: 3, T: at, Interaction: "break-glass", User: "u4", Outcome: "0", Allowed: true, BreakGlass: true, Until: "2026-01-01T11:00:00Z"}},
	}
	for _, tc := range tests {
		got, err := parseLeaf(3, tc.ev.Leaf())
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.ev.Interaction, d)
		}
	}
	for _, bad := range []string{`{}`, `{"resourceType":"Patient","recorded":"2026-01-01T00:00:00Z"}`, `{"resourceType":"AuditEvent","recorded":"yesterday"}`, `x`} {
		if _, err := parseLeaf(0, []byte(bad)); err == nil {
			t.Errorf("parseLeaf(%s) accepted it", bad)
		}
	}
}

func TestWebhookSignedAndWithoutNotes(t *testing.T) {
	type got struct {
		body []byte
		sig  string
	}
	ch := make(chan got, 4)
	fails := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if fails > 0 { // the first delivery fails: it is retried
			fails--
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		ch <- got{b, r.Header.Get("X-Phivault-Signature")}
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	secret := []byte("s3cret")
	wh := &Webhook{URL: srv.URL, Secret: secret}
	wh.Start(ctx)
	a := &StoredAlert{ID: "al-1", UserID: "u1", PatientID: "p1", Rules: []string{"break-glass-access"}, Status: StatusNew,
		Notes: []Note{{Note: "the patient's diagnosis"}}}
	wh.Send(a)
	var g got
	select {
	case g = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook was not delivered")
	}
	m := hmac.New(sha256.New, secret)
	m.Write(g.body)
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); !hmac.Equal([]byte(want), []byte(g.sig)) {
		t.Errorf("signature %q, want %q", g.sig, want)
	}
	var b map[string]any
	if err := json.Unmarshal(g.body, &b); err != nil {
		t.Fatal(err)
	}
	if b["id"] != "al-1" || b["patient_id"] != "p1" || strings.Contains(string(g.body), "diagnosis") {
		t.Errorf("webhook body %s", g.body)
	}
}

// memRecords serves resources from a map, as records would.
type memRecords map[string][]records.Entry

func (m memRecords) Match(_ context.Context, q store.MatchQuery) ([]string, error) {
	var ids []string
	for _, e := range m[q.Type] {
		if e.ID > q.After {
			ids = append(ids, e.ID)
		}
	}
	slices.Sort(ids)
	if q.Limit > 0 && len(ids) > q.Limit {
		ids = ids[:q.Limit]
	}
	return ids, nil
}

func (m memRecords) ReadMany(_ context.Context, typ string, ids []string) ([]records.Entry, error) {
	var out []records.Entry
	for _, e := range m[typ] {
		for _, id := range ids {
			if e.ID == id {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// testRecords holds testDirectory's resources as memRecords.
func testRecords() memRecords {
	m := memRecords{}
	for _, line := range strings.Split(strings.TrimSpace(testDirectory), "\n") {
		var x struct{ ResourceType, ID string }
		json.Unmarshal([]byte(line), &x)
		m[x.ResourceType] = append(m[x.ResourceType], records.Entry{Type: x.ResourceType, ID: x.ID, Body: []byte(line)})
	}
	return m
}

func TestDirectoryFromRecords(t *testing.T) {
	m := testRecords()
	d, err := DirectoryFrom(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := LoadDirectory(strings.NewReader(testDirectory))
	if d.Staff[d.staffIdx["nurse-ann"]].Patient != d.patIdx["pat-ann"] || len(d.Patients) != len(want.Patients) ||
		d.Explain(d.staffIdx["nurse-ann"], d.patIdx["pat-care"], time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).Unix(), -1, -1) == 0 {
		t.Errorf("directory from records differs from the file's: %+v %v", d.Staff, d.rels)
	}
}

// A stored resource the directory cannot read is left out and counted;
// the rest of the directory stands.
func TestDirectoryFromSkipsWhatItCannotRead(t *testing.T) {
	m := testRecords()
	odd := `{"resourceType":"Patient","id":"pat-odd","identifier":{"value":"not a list"}}`
	m["Patient"] = append(m["Patient"], records.Entry{Type: "Patient", ID: "pat-odd", Body: []byte(odd)})
	d, err := DirectoryFrom(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := LoadDirectory(strings.NewReader(testDirectory))
	if d.Skipped != 1 || len(d.Patients) != len(want.Patients) || len(d.Staff) != len(want.Staff) {
		t.Errorf("skipped %d, %d patients and %d staff; want 1, %d and %d", d.Skipped, len(d.Patients), len(d.Staff), len(want.Patients), len(want.Staff))
	}
	if _, err := LoadDirectory(strings.NewReader(testDirectory + odd + "\n")); err == nil {
		t.Error("LoadDirectory took a malformed line")
	}
}
