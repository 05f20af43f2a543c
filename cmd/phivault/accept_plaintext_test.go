package main

// Acceptance test 3 of issue 2: no patient data in plaintext. After the
// Synthea import, and while a real server answers reads and searches, no
// file under the data directory (database, WAL, shared memory, journal,
// keys, certificates, anything) and no line of the server's log holds any
// patient's name, identifier, birth date, address line, phone or email, in
// UTF-8 or UTF-16. A user relies on a stolen disk, backup or log file
// revealing nothing about their patients.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/phivault/phivault/internal/synth"
)

// minLeakLen: shorter values occur by chance in megabytes of ciphertext
// (synth.Sensitive explains); every patient keeps several longer ones.
const minLeakLen = 8

// leakScanner finds any of many byte patterns (each at least 8 bytes) in
// a stream: a bitset over a hash of each position's next 8 bytes filters,
// a map from those 8 bytes confirms.
type leakScanner struct {
	pats   []leakPattern
	index  map[uint64][]int32
	filter []uint64
	maxLen int
}

type leakPattern struct {
	b     []byte
	value string
	enc   string
}

const filterBits = 22

func hash8(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> (64 - filterBits) }

// newLeakScanner looks for every value of at least minLeakLen bytes in
// UTF-8, UTF-16LE and UTF-16BE; it returns how many values it kept.
func newLeakScanner(values []string) (*leakScanner, int) {
	s := &leakScanner{index: map[uint64][]int32{}, filter: make([]uint64, 1<<filterBits/64)}
	kept := 0
	for _, v := range values {
		if len(v) < minLeakLen {
			continue
		}
		kept++
		u := utf16.Encode([]rune(v))
		le, be := make([]byte, 2*len(u)), make([]byte, 2*len(u))
		for i, c := range u {
			binary.LittleEndian.PutUint16(le[2*i:], c)
			binary.BigEndian.PutUint16(be[2*i:], c)
		}
		for _, p := range []leakPattern{{[]byte(v), v, "UTF-8"}, {le, v, "UTF-16LE"}, {be, v, "UTF-16BE"}} {
			k := binary.LittleEndian.Uint64(p.b)
			s.index[k] = append(s.index[k], int32(len(s.pats)))
			h := hash8(k)
			s.filter[h/64] |= 1 << (h % 64)
			s.pats = append(s.pats, p)
			s.maxLen = max(s.maxLen, len(p.b))
		}
	}
	return s, kept
}

// scan calls hit for every occurrence of a pattern in r.
func (s *leakScanner) scan(r io.Reader, hit func(p *leakPattern, off int64)) error {
	buf := make([]byte, 4<<20+s.maxLen)
	var base int64 // offset of buf[0] in the stream
	keep := 0
	for {
		n, err := io.ReadFull(r, buf[keep:])
		total := keep + n
		eof := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !eof {
			return err
		}
		limit := total - s.maxLen + 1 // positions with every pattern's bytes present
		if eof {
			limit = total - 7
		}
		for i := 0; i < limit; i++ {
			k := binary.LittleEndian.Uint64(buf[i:])
			h := hash8(k)
			if s.filter[h/64]&(1<<(h%64)) == 0 {
				continue
			}
			for _, pi := range s.index[k] {
				p := &s.pats[pi]
				if i+len(p.b) <= total && bytes.Equal(buf[i:i+len(p.b)], p.b) {
					hit(p, base+int64(i))
				}
			}
		}
		if eof {
			return nil
		}
		limit = max(limit, 0)
		keep = copy(buf, buf[limit:total])
		base += int64(limit)
	}
}

// leak is one place a value was found.
type leak struct{ where, value, enc string }

// scanTree scans every regular file under dir and returns what it found,
// the number of files and bytes.
func (s *leakScanner) scanTree(t *testing.T, dir string) (leaks []leak, files int, size int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) { // -shm/-journal files come and go
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			return nil
		} else if err != nil {
			return err
		}
		defer f.Close()
		cr := &countingReader{r: f}
		files++
		err = s.scan(cr, func(lp *leakPattern, off int64) {
			leaks = append(leaks, leak{fmt.Sprintf("%s@%d", p, off), lp.value, lp.enc})
		})
		size += cr.n
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return leaks, files, size
}

type countingReader struct {
	r io.Reader
	n int64
}

// scanAudit scans each audit leaf of the database in dir uncompressed:
// the store keeps them compressed, where scanTree cannot see their text.
func (s *leakScanner) scanAudit(t *testing.T, dir string) (leaks []leak) {
	t.Helper()
	leaves := auditLeavesIn(t, dir)
	if len(leaves) == 0 {
		t.Fatal("no audit leaf to scan")
	}
	for i, l := range leaves {
		if !json.Valid(l) { // control: the leaf was read uncompressed
			t.Fatalf("audit leaf %d is not JSON as read: %.40q", i, l)
		}
		if err := s.scan(bytes.NewReader(l), func(p *leakPattern, off int64) {
			leaks = append(leaks, leak{fmt.Sprintf("audit leaf %d@%d", i, off), p.value, p.enc})
		}); err != nil {
			t.Fatal(err)
		}
	}
	return leaks
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

func reportLeaks(t *testing.T, what string, leaks []leak) {
	t.Helper()
	for i, l := range leaks {
		if i == 10 {
			t.Errorf("... and %d more", len(leaks)-10)
			break
		}
		t.Errorf("%s: patient value %q in plaintext (%s) at %s", what, l.value, l.enc, l.where)
	}
}

// patientValues returns the identifying strings of every Patient in the
// bundles (synth.Sensitive), except each patient's own id: resource ids
// are stored in plaintext by design, and fhir-data-pipes reuses the id as
// the MRN value.
func patientValues(bundles func(yield func(map[string]any) bool)) []string {
	var out []string
	seen := map[string]bool{}
	for b := range bundles {
		ids := map[string]bool{}
		for _, e := range list(b["entry"]) {
			if r, _ := e["resource"].(map[string]any); r["resourceType"] == "Patient" {
				id, _ := r["id"].(string)
				ids[id] = true
			}
		}
		for _, v := range synth.Sensitive(b) {
			if !ids[v] && !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out
}

// checkControl proves the scanner finds what it looks for: every value in
// the raw input in UTF-8, and every value of a raw bundle re-encoded as
// UTF-16LE and UTF-16BE.
func checkControl(t *testing.T, s *leakScanner, kept int, raw [][]byte) {
	t.Helper()
	found := map[string]bool{}
	for _, r := range raw {
		s.scan(bytes.NewReader(r), func(p *leakPattern, _ int64) { found[p.enc+" "+p.value] = true })
	}
	if len(found) != kept {
		t.Fatalf("control: the scanner found %d of %d values in the raw bundles; it is broken", len(found), kept)
	}
	for _, r := range raw {
		want := map[string]bool{}
		s.scan(bytes.NewReader(r), func(p *leakPattern, _ int64) { want[p.value] = true })
		if len(want) == 0 {
			continue
		}
		u := utf16.Encode([]rune(string(r)))
		for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			b := make([]byte, 2*len(u))
			for i, c := range u {
				order.PutUint16(b[2*i:], c)
			}
			got := map[string]bool{}
			s.scan(bytes.NewReader(b), func(p *leakPattern, _ int64) {
				if p.enc != "UTF-8" {
					got[p.value] = true
				}
			})
			if len(got) != len(want) {
				t.Fatalf("control: %d of %d values found in a %v UTF-16 copy of a raw bundle", len(got), len(want), order)
			}
		}
		return
	}
	t.Fatal("control: no raw bundle holds a patient value")
}

func TestAcceptNoPlaintext(t *testing.T) {
	fx := syntheaData(t)
	values := patientValues(fileBundles(t, fx.raw))
	s, kept := newLeakScanner(values)
	var raw [][]byte
	for _, f := range fx.raw {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(`"Patient"`)) {
			raw = append(raw, b)
		}
	}
	checkControl(t, s, kept, raw)
	t.Logf("scanning for %d patient values of at least %d bytes (%d shorter ones skipped), each in UTF-8, UTF-16LE and UTF-16BE",
		kept, minLeakLen, len(values)-kept)

	// Serve the directory with its JSON log (debug level: the most it
	// ever writes) captured, and read and search the patients.
	var logBuf lockedBuffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(serveOptions{data: fx.dir, listen: "127.0.0.1:0", logLevel: "debug", ready: func(u string) { ready <- u }}, &logBuf)
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the server did not start")
	}
	var tok bytes.Buffer
	if code := run([]string{"token", "--data", fx.dir, "--role", "operator"}, &tok, io.Discard); code != exitOK {
		t.Fatalf("token through the admin socket: exit %d", code)
	}
	c := tlsClient(t, filepath.Join(fx.dir, tlsDirName, "cert.pem"))
	requests := 0
	get := func(rel string) {
		req, _ := http.NewRequest(http.MethodGet, base+"/fhir/"+rel, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Errorf("GET %s: %d", rel, resp.StatusCode)
		}
		requests++
	}
	patients := 0
	for b := range fileBundles(t, fx.raw[len(fx.raw)-40:]) {
		for _, e := range list(b["entry"]) {
			r, _ := e["resource"].(map[string]any)
			if r["resourceType"] != "Patient" {
				continue
			}
			patients++
			id, _ := r["id"].(string)
			get("Patient/" + id)
			get("Patient/" + id + "/_history")
			get("Observation?subject=Patient/" + id)
			for _, n := range list(r["name"]) {
				fam, _ := n["family"].(string)
				get("Patient?name=" + url.QueryEscape(fam))
			}
			for _, ident := range list(r["identifier"]) {
				sys, _ := ident["system"].(string)
				val, _ := ident["value"].(string)
				get("Patient?identifier=" + url.QueryEscape(sys+"|"+val))
			}
			bd, _ := r["birthDate"].(string)
			get("Patient?birthdate=" + bd)
		}
	}
	// A rejected write whose bad values are patient data: the client is
	// told what is wrong; the log must not repeat it.
	bad, _ := json.Marshal(map[string]any{"resourceType": "Patient", "birthDate": values[0] + "-not-a-date", "name": []any{map[string]any{"family": values[1], "bogus": values[2]}}})
	req, _ := http.NewRequest(http.MethodPost, base+"/fhir/Patient", bytes.NewReader(bad))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
	req.Header.Set("Content-Type", "application/fhir+json")
	if resp, err := c.Do(req); err != nil || resp.StatusCode/100 != 4 {
		t.Errorf("bad Patient: %v %v; want 4xx", err, resp.Status)
	} else {
		resp.Body.Close()
	}

	leaks, files, size := s.scanTree(t, fx.dir)
	reportLeaks(t, "data directory while serving", leaks)
	reportLeaks(t, "audit leaves (uncompressed)", s.scanAudit(t, fx.dir))
	t.Logf("served %d requests about %d patients; scanned %d files, %d MB, while serving", requests, patients, files, size>>20)

	syscall.Kill(os.Getpid(), syscall.SIGINT) // serve stops on SIGINT, as under a terminal
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	logs := logBuf.Bytes()
	if !bytes.Contains(logs, []byte(`"msg":"serving"`)) || len(logs) < 1000 {
		t.Fatalf("captured only %d bytes of server log; the capture is not working", len(logs))
	}
	var logLeaks []leak
	s.scan(bytes.NewReader(logs), func(p *leakPattern, off int64) {
		logLeaks = append(logLeaks, leak{fmt.Sprintf("log@%d", off), p.value, p.enc})
	})
	reportLeaks(t, "server log", logLeaks)
	leaks, files, size = s.scanTree(t, fx.dir)
	reportLeaks(t, "data directory after shutdown", leaks)
	t.Logf("after shutdown: scanned %d files, %d MB; server log %d KB; no patient value found", files, size>>20, len(logs)>>10)
}

// TestAcceptNoPlaintextDemo runs the same scan over a data directory
// loaded like `phivault demo` does, with the project's own generator.
func TestAcceptNoPlaintextDemo(t *testing.T) {
	opt := synth.Options{Seed: 1, Patients: 100}
	if testing.Short() {
		opt.Patients = 20
	}
	dir := filepath.Join(t.TempDir(), "demo")
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadDemo(dir, opt, io.Discard); err != nil {
		t.Fatal(err)
	}
	var raw [][]byte
	for b := range synth.Bundles(opt) {
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, j)
	}
	values := patientValues(func(yield func(map[string]any) bool) {
		for b := range synth.Bundles(opt) {
			if !yield(b) {
				return
			}
		}
	})
	s, kept := newLeakScanner(values)
	checkControl(t, s, kept, raw)
	leaks, files, size := s.scanTree(t, dir)
	reportLeaks(t, "demo data directory", leaks)
	reportLeaks(t, "demo audit leaves (uncompressed)", s.scanAudit(t, dir))
	t.Logf("%d patients: %d values scanned (%d shorter skipped) in %d files, %d KB", opt.Patients, kept, len(values)-kept, files, size>>10)
}

// TestLeakScanner checks the scanner itself on planted values: across its
// 4 MiB read boundary, at the very end of a file, in UTF-16LE and BE.
func TestLeakScanner(t *testing.T) {
	s, kept := newLeakScanner([]string{"Marvin195", "555-284-5400", "short"})
	if kept != 2 {
		t.Fatalf("kept %d values, want 2 (short ones are skipped)", kept)
	}
	data := bytes.Repeat([]byte{0xff}, 9<<20) // not 0: a UTF-16 copy padded by zeros is also the other byte order
	copy(data[4<<20-4:], "Marvin195")
	copy(data[6<<20:], "M\x00a\x00r\x00v\x00i\x00n\x001\x009\x005\x00")
	copy(data[7<<20:], "\x005\x005\x005\x00-\x002\x008\x004\x00-\x005\x004\x000\x000")
	copy(data[len(data)-12:], "555-284-5400")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	leaks, files, size := s.scanTree(t, dir)
	var got []string
	for _, l := range leaks {
		got = append(got, l.enc+" "+l.value+" "+strings.TrimPrefix(l.where, dir))
	}
	want := []string{
		fmt.Sprintf("UTF-8 Marvin195 /f@%d", 4<<20-4),
		fmt.Sprintf("UTF-16LE Marvin195 /f@%d", 6<<20),
		fmt.Sprintf("UTF-16BE 555-284-5400 /f@%d", 7<<20),
		fmt.Sprintf("UTF-8 555-284-5400 /f@%d", len(data)-12),
	}
	if files != 1 || size != int64(len(data)) || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("found %q in %d files, %d bytes; want %q", got, files, size, want)
	}
}

// lockedBuffer is a bytes.Buffer safe for the server's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
