package detect

import (
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"time"
)

// Actions in the import format.
const (
	ActRead uint8 = iota
	ActSearch
	ActCreate
	ActUpdate
	ActDelete
	ActPrint
	ActExport
	ActLogin
	ActLoginFailed
	ActLogout
	ActBreakGlass
)

var actionNames = []string{"read", "search", "create", "update", "delete", "print", "export", "login", "login-failed", "logout", "break-glass"}

var actionIdx = func() map[string]uint8 {
	m := map[string]uint8{}
	for i, a := range actionNames {
		m[a] = uint8(i)
	}
	return m
}()

// Columns of the import format; the first four are required.
var Columns = []string{"time", "user_id", "action", "patient_id", "user_name", "user_role", "department", "resource_type", "resource_id", "source_ip", "workstation", "outcome"}

// Event is one access, with its strings interned.
type Event struct {
	T       int64 // unix seconds
	User    int32
	Patient int32 // -1: none; -2: a patient the directory does not know
	Dept    int16 // department the log names, -1 if none
	Action  uint8
	Failed  bool // outcome is failure or denied
	IP, WS  int32
}

// RowError is a rejected row.
type RowError struct {
	Line int
	Msg  string
}

func (e RowError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// ImportStats counts what a read of an access log did.
type ImportStats struct {
	Rows, Accepted, Duplicates, OutOfOrder int
	UnknownUsers, UnknownPatients          int
	Errors                                 []RowError // the first 100
	ErrorCount                             int
}

// Reader reads access logs in the import format into Events. It interns
// strings in the Directory (unknown users become staff not in the
// directory) and drops rows it has seen before, keyed by a hash of the
// row, so importing a file twice counts it once.
type Reader struct {
	dir   *Directory
	seen  map[uint64]struct{}
	ips   map[string]int32
	IPs   []string
	Stats ImportStats
	maxT  int64
	depts map[string]int16 // raw department column -> index
}

func (r *Reader) dept(name string) int16 {
	if i, ok := r.depts[name]; ok {
		return i
	}
	i := r.dir.DeptIndex(name)
	r.depts[strings.Clone(name)] = i
	return i
}

// NewReader returns a Reader that resolves names against dir.
func NewReader(dir *Directory) *Reader {
	return &Reader{dir: dir, seen: make(map[uint64]struct{}, 1<<16), ips: map[string]int32{}, depts: map[string]int16{}}
}

func (r *Reader) intern(s string) int32 {
	if i, ok := r.ips[s]; ok {
		return i
	}
	s = strings.Clone(s) // the CSV reader reuses its buffers
	r.IPs = append(r.IPs, s)
	r.ips[s] = int32(len(r.IPs) - 1)
	return int32(len(r.IPs) - 1)
}

func (r *Reader) reject(line int, format string, args ...any) {
	r.Stats.ErrorCount++
	if len(r.Stats.Errors) < 100 {
		r.Stats.Errors = append(r.Stats.Errors, RowError{line, fmt.Sprintf(format, args...)})
	}
}

// readHeader reads the access log's header line and returns, for each of
// Columns, the index of its field (-1 when absent), and the number of
// fields every row must have. The first four columns are required.
func readHeader(cr *csv.Reader) ([]int, int, error) {
	head, err := cr.Read()
	if err != nil {
		return nil, 0, fmt.Errorf("access log: no header: %v", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(strings.ToLower(h))] = i
	}
	for _, c := range Columns[:4] {
		if _, ok := col[c]; !ok {
			return nil, 0, fmt.Errorf("access log: header lacks the required column %q", c)
		}
	}
	idx := make([]int, len(Columns))
	for i, c := range Columns {
		idx[i] = -1
		if j, ok := col[c]; ok {
			idx[i] = j
		}
	}
	return idx, len(head), nil
}

// Read calls fn for every new, valid row of the CSV in in. Rows with
// errors are counted and skipped; only an unreadable header stops it.
func (r *Reader) Read(in io.Reader, fn func(*Event)) error {
	cr := csv.NewReader(in)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	idx, width, err := readHeader(cr)
	if err != nil {
		return err
	}
	h := fnv.New64a()
	var ev Event
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		line, _ := cr.FieldPos(0)
		r.Stats.Rows++
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			r.reject(pe.Line, "%v", pe.Err)
			continue
		} else if err != nil {
			return err
		}
		get := func(c int) string {
			if idx[c] < 0 || idx[c] >= len(rec) {
				return ""
			}
			return strings.TrimSpace(rec[idx[c]])
		}
		if len(rec) != width {
			r.reject(line, "%d fields, the header has %d", len(rec), width)
			continue
		}
		t, err := time.Parse(time.RFC3339, get(0))
		if err != nil {
			r.reject(line, "time %q is not RFC 3339 (e.g. 2026-01-05T08:30:00Z)", get(0))
			continue
		}
		act, ok := actionIdx[get(2)]
		if !ok {
			r.reject(line, "unknown action %q", get(2))
			continue
		}
		uid, pid := get(1), get(3)
		if uid == "" {
			r.reject(line, "empty user_id")
			continue
		}
		needsPatient := act != ActLogin && act != ActLoginFailed && act != ActLogout
		if needsPatient && pid == "" {
			r.reject(line, "action %s needs a patient_id", get(2))
			continue
		}
		h.Reset()
		for _, f := range rec {
			h.Write([]byte(f))
			h.Write([]byte{0x1f})
		}
		key := h.Sum64()
		if _, dup := r.seen[key]; dup {
			r.Stats.Duplicates++
			continue
		}
		r.seen[key] = struct{}{}
		ev = Event{T: t.Unix(), Action: act, Patient: -1, IP: r.intern(get(9)), WS: r.intern(get(10))}
		if ev.T < r.maxT {
			r.Stats.OutOfOrder++
		}
		r.maxT = max(r.maxT, ev.T)
		ui, known := r.dir.staffIdx[uid]
		if !known || !r.dir.Staff[ui].InDirectory {
			if !known {
				r.Stats.UnknownUsers++
			}
			ui = r.dir.userIndex(uid)
			s := &r.dir.Staff[ui]
			if s.Role == "" {
				s.Role, s.Dept, s.Name = get(5), r.dir.DeptIndex(get(6)), get(4)
			}
		}
		ev.User = ui
		ev.Dept = r.dept(get(6))
		if needsPatient {
			if pi, ok := r.dir.patIdx[pid]; ok {
				ev.Patient = pi
			} else {
				ev.Patient = -2
				r.Stats.UnknownPatients++
			}
		}
		o := strings.ToLower(get(11))
		ev.Failed = o == "failure" || o == "denied" || o == "failed" || act == ActLoginFailed
		r.Stats.Accepted++
		fn(&ev)
	}
}

// Reset starts a new pass over the same input: the duplicate filter and
// the counts start again; interned names keep their indexes.
func (r *Reader) Reset() {
	clear(r.seen)
	r.Stats = ImportStats{}
	r.maxT = 0
}
