package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Result is one measured point. It is written as JSON (one object per
// line) so runs can be compared and turned into tables later.
type Result struct {
	Target   string `json:"target"`   // "phivault", "sqlite-each", "sqlite-group", ...
	Workload string `json:"workload"` // "read", "create", "update", "transaction", "healthz"
	Round    int    `json:"round,omitempty"`
	Proto    string `json:"proto,omitempty"` // HTTP protocol used, for HTTP targets
	Clients  int    `json:"clients"`

	Seconds     float64 `json:"seconds"`
	Ops         int64   `json:"ops"`   // successful operations
	Items       int64   `json:"items"` // resources moved by them
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	ItemsPerSec float64 `json:"items_per_sec"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`

	// CPU used during the point, in percent of one core: by the measuring
	// process itself (load generator, or SQLite plus driver for the
	// baseline) and, when its pid is known, by the server.
	ToolCPUPct   float64 `json:"tool_cpu_pct"`
	ServerCPUPct float64 `json:"server_cpu_pct,omitempty"`

	ReqBytes  float64 `json:"req_bytes,omitempty"`  // mean request body size
	RespBytes float64 `json:"resp_bytes,omitempty"` // mean response body size
}

// WriteJSON appends r as one JSON line to path ("" does nothing).
func WriteJSON(path string, r Result) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	return json.NewEncoder(f).Encode(r)
}

// ReadJSON reads the results in JSON-lines files.
func ReadJSON(paths ...string) ([]Result, error) {
	var out []Result
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(f)
		for dec.More() {
			var r Result
			if err := dec.Decode(&r); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			out = append(out, r)
		}
		f.Close()
	}
	return out, nil
}

// TableHeader and Row print results as a markdown table.
func TableHeader(w io.Writer) {
	fmt.Fprintln(w, "| target | workload | clients | round | ops/s | resources/s | p50 ms | p99 ms | errors | tool CPU % | server CPU % |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
}

// Row prints one result as a table row.
func Row(w io.Writer, r Result) {
	srv := "-"
	if r.ServerCPUPct > 0 {
		srv = fmt.Sprintf("%.0f", r.ServerCPUPct)
	}
	fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %s | %.2f | %.2f | %d | %.0f | %s |\n",
		r.Target, r.Workload, r.Clients, r.Round, Num(r.OpsPerSec), Num(r.ItemsPerSec), r.P50ms, r.P99ms, r.Errors, r.ToolCPUPct, srv)
}

// Num formats a rate with thousands separators.
func Num(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ProcCPU returns the user+system CPU time of process pid, from
// /proc/PID/stat (Linux; 0 when unavailable).
func ProcCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" that ends the command name: state is field 3,
	// utime and stime are fields 14 and 15 (in clock ticks, 100 per second
	// on Linux).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// ParseInts parses a comma-separated list such as "16,64".
func ParseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseList parses a comma-separated list of names.
func ParseList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
