package detect

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Row is one access as an import keeps it: the columns of the import CSV
// format, checked and put in canonical form (time in UTC, action in the
// vocabulary, outcome lower case), so that the same access read from a
// CSV file or from a FHIR AuditEvent is the same Row.
type Row struct {
	Time         string `json:"time"` // RFC 3339, UTC
	UserID       string `json:"user_id"`
	Action       string `json:"action"`
	PatientID    string `json:"patient_id,omitempty"`
	UserName     string `json:"user_name,omitempty"`
	UserRole     string `json:"user_role,omitempty"`
	Department   string `json:"department,omitempty"`
	ResourceType string `json:"resource_type,omitempty"`
	ResourceID   string `json:"resource_id,omitempty"`
	SourceIP     string `json:"source_ip,omitempty"`
	Workstation  string `json:"workstation,omitempty"`
	Outcome      string `json:"outcome,omitempty"`
}

// fields returns the row's columns in the order of Columns.
func (r *Row) fields() []string {
	return []string{r.Time, r.UserID, r.Action, r.PatientID, r.UserName, r.UserRole, r.Department,
		r.ResourceType, r.ResourceID, r.SourceIP, r.Workstation, r.Outcome}
}

// canonical checks a row and puts it in canonical form. The error text
// names the faulty field and quotes only the time or action given, never
// an id.
func (r *Row) canonical(rawTime string) error {
	t, err := time.Parse(time.RFC3339, rawTime)
	if err != nil {
		return fmt.Errorf("time %q is not RFC 3339 (e.g. 2026-01-05T08:30:00Z)", clip(rawTime))
	}
	r.Time = t.UTC().Format(time.RFC3339Nano)
	act, ok := actionIdx[r.Action]
	if !ok {
		return fmt.Errorf("unknown action %q (one of %s)", clip(r.Action), strings.Join(actionNames, " "))
	}
	if r.UserID == "" {
		return errors.New("empty user_id")
	}
	if act != ActLogin && act != ActLoginFailed && act != ActLogout && r.PatientID == "" {
		return fmt.Errorf("action %s needs a patient_id", r.Action)
	}
	r.Outcome = strings.ToLower(r.Outcome)
	return nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// ParseStats counts what parsing an import file found. Errors holds the
// first 100 rejected rows with their line numbers.
type ParseStats struct {
	Rows       int        `json:"rows"`
	Rejected   int        `json:"rejected"`
	Duplicates int        `json:"duplicates_in_file"`
	OutOfOrder int        `json:"out_of_order"`
	Errors     []RowError `json:"-"`
}

func (s *ParseStats) reject(line int, err error) {
	s.Rejected++
	if len(s.Errors) < 100 {
		s.Errors = append(s.Errors, RowError{Line: line, Msg: err.Error()})
	}
}

// ParsedRow is a good row and the line it came from.
type ParsedRow struct {
	Line int
	Row
}

// Import formats.
const (
	FormatCSV        = "csv"
	FormatAuditEvent = "auditevent-ndjson"
)

// ParseImport reads a whole access log in format (FormatCSV or
// FormatAuditEvent) and returns its good rows in file order. Bad rows are
// counted, reported with their line numbers and skipped; rows equal to an
// earlier row of the file are counted as duplicates and dropped. It fails
// only when the file cannot be read at all (no CSV header, an I/O error).
func ParseImport(in io.Reader, format string) ([]ParsedRow, ParseStats, error) {
	var st ParseStats
	var rows []ParsedRow
	seen := map[Row]struct{}{}
	var maxT time.Time
	add := func(line int, r Row) {
		if _, dup := seen[r]; dup {
			st.Duplicates++
			return
		}
		seen[r] = struct{}{}
		t, _ := time.Parse(time.RFC3339Nano, r.Time) // canonical: it parses
		if t.Before(maxT) {
			st.OutOfOrder++
		} else {
			maxT = t
		}
		rows = append(rows, ParsedRow{line, r})
	}
	var err error
	switch format {
	case FormatCSV:
		err = parseCSV(in, &st, add)
	case FormatAuditEvent:
		err = parseNDJSON(in, &st, add)
	default:
		err = fmt.Errorf("unknown format %q (csv or %s)", format, FormatAuditEvent)
	}
	return rows, st, err
}

func parseCSV(in io.Reader, st *ParseStats, add func(int, Row)) error {
	cr := csv.NewReader(bufio.NewReaderSize(in, 1<<16))
	cr.FieldsPerRecord = -1
	idx, width, err := readHeader(cr)
	if err != nil {
		return err
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		st.Rows++
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			st.reject(pe.Line, pe.Err)
			continue
		} else if err != nil {
			return err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != width {
			st.reject(line, fmt.Errorf("%d fields, the header has %d", len(rec), width))
			continue
		}
		get := func(c int) string {
			if idx[c] < 0 {
				return ""
			}
			return strings.TrimSpace(rec[idx[c]])
		}
		r := Row{UserID: get(1), Action: get(2), PatientID: get(3), UserName: get(4), UserRole: get(5), Department: get(6),
			ResourceType: get(7), ResourceID: get(8), SourceIP: get(9), Workstation: get(10), Outcome: get(11)}
		if err := r.canonical(get(0)); err != nil {
			st.reject(line, err)
			continue
		}
		add(line, r)
	}
}

func parseNDJSON(in io.Reader, st *ParseStats, add func(int, Row)) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		st.Rows++
		r, err := ParseAuditEvent(b)
		if err != nil {
			st.reject(line, err)
			continue
		}
		add(line, r)
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		st.Rows++
		st.reject(line+1, errors.New("line longer than 4 MiB; the rest of the file was not read"))
		return nil
	}
	return sc.Err()
}

// KnowsUser reports whether the directory names the user as staff.
func (d *Directory) KnowsUser(id string) bool {
	i, ok := d.staffIdx[id]
	return ok && d.Staff[i].InDirectory
}

// KnowsPatient reports whether the directory holds the patient.
func (d *Directory) KnowsPatient(id string) bool {
	_, ok := d.patIdx[id]
	return ok
}

// WriteCSV writes rows in the import CSV format, header first.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(Columns); err != nil {
		return err
	}
	for i := range rows {
		if err := cw.Write(rows[i].fields()); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
