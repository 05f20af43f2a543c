package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// syslogSDID is the structured-data element of every message; 32473 is
// the private enterprise number reserved for examples (RFC 5612).
const syslogSDID = "phivault@32473"

// frameSyslog renders leaf index i as one RFC 5425 frame: "LEN SP MSG",
// MSG an RFC 5424 message from facility 13 (log audit), severity info
// (outcome success) or warning (anything else), APP-NAME phivault,
// MSGID AUDIT, structured data [phivault@32473 leaf="i"] and the leaf
// itself, the BALP AuditEvent as compact JSON, as MSG. The leaf holds ids
// and references only, never patient values.
func frameSyslog(i uint64, leaf []byte, host string) []byte {
	var h struct {
		Recorded string `json:"recorded"`
		Outcome  string `json:"outcome"`
	}
	_ = json.Unmarshal(leaf, &h) // a leaf that is not an event still goes out, with NILVALUE time
	pri := 13*8 + 6
	if h.Outcome != Success {
		pri = 13*8 + 4
	}
	ts := "-"
	if t, err := time.Parse(time.RFC3339Nano, h.Recorded); err == nil {
		ts = t.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	}
	var m bytes.Buffer
	m.WriteString("<" + strconv.Itoa(pri) + ">1 " + ts + " " + syslogName(host, 255) + " phivault - AUDIT [")
	m.WriteString(syslogSDID + ` leaf="` + strconv.FormatUint(i, 10) + `"] `)
	m.Write(leaf)
	out := make([]byte, 0, m.Len()+8)
	out = strconv.AppendInt(out, int64(m.Len()), 10)
	out = append(out, ' ')
	return append(out, m.Bytes()...)
}

// syslogName returns s as an RFC 5424 header field: printable US-ASCII
// without spaces, at most n characters, NILVALUE when empty.
func syslogName(s string, n int) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < n; i++ {
		if c := s[i]; c > 32 && c < 127 {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

var errNoLeafIndex = errors.New("audit: no phivault leaf index in syslog message")

// SyslogLeaf finds, in a syslog message or a line of a receiver's log
// that kept the structured data, the leaf index this sink put there and
// the AuditEvent JSON after it. A receiver uses the index to drop the
// duplicates that at-least-once delivery may bring.
func SyslogLeaf(line []byte) (uint64, []byte, error) {
	marker := []byte("[" + syslogSDID + ` leaf="`)
	k := bytes.Index(line, marker)
	if k < 0 {
		return 0, nil, errNoLeafIndex
	}
	rest := line[k+len(marker):]
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || end > 20 || !bytes.HasPrefix(rest[end:], []byte(`"]`)) {
		return 0, nil, errNoLeafIndex
	}
	i, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	if err != nil || (end > 1 && rest[0] == '0') {
		return 0, nil, errNoLeafIndex
	}
	return i, bytes.TrimSpace(rest[end+2:]), nil
}
