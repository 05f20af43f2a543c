package audit

import (
	"bytes"
	"encoding/hex"
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
//
// A leaf longer than maxMsg bytes (0: no limit) is sent shortened, see
// shortenLeaf, with its Merkle leaf hash in the structured data
// (leafhash="hex") so the receiver can fetch and check the whole event
// from the log. rsyslog misreads the rest of a connection after a frame
// above its imtcp maxFrameSize (default 200,000 bytes).
func frameSyslog(i uint64, leaf []byte, host string, maxMsg int) []byte {
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
	m.WriteString(syslogSDID + ` leaf="` + strconv.FormatUint(i, 10) + `"`)
	if maxMsg > 0 && len(leaf) > maxMsg-m.Len()-200 {
		m.WriteString(` leafhash="` + hex.EncodeToString(LeafHash(leaf)) + `"`)
		leaf = shortenLeaf(leaf, maxMsg-m.Len()-200)
	}
	m.WriteString("] ")
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
	if end <= 0 || end > 20 || len(rest) < end+2 || (rest[end+1] != ']' && rest[end+1] != ' ') {
		return 0, nil, errNoLeafIndex
	}
	i, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	if err != nil || (end > 1 && rest[0] == '0') {
		return 0, nil, errNoLeafIndex
	}
	close := bytes.IndexByte(rest[end:], ']') // our parameter values hold no ']'
	if close < 0 {
		return 0, nil, errNoLeafIndex
	}
	return i, bytes.TrimSpace(rest[end+close+1:]), nil
}

// shortenLeaf returns the event leaf with as many of its entities as fit
// in max bytes, and an extension urn:phivault:syslog-omitted-entities
// counting the rest. An event that does not fit even without entities
// becomes a stub naming only its time and outcome.
func shortenLeaf(leaf []byte, max int) []byte {
	var ev map[string]any
	if err := json.Unmarshal(leaf, &ev); err != nil || ev == nil {
		return []byte(`{"omitted":"not an event; see the log"}`)
	}
	ents, _ := ev["entity"].([]any)
	ext, _ := ev["extension"].([]any)
	enc := func(k int) []byte {
		ev["entity"] = ents[:k]
		ev["extension"] = append(ext[:len(ext):len(ext)], map[string]any{"url": "urn:phivault:syslog-omitted-entities", "valueInteger": len(ents) - k})
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false)
		if e.Encode(ev) != nil {
			return nil
		}
		return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	}
	lo, hi := 0, len(ents) // the largest k that fits is in [lo, hi]
	if len(enc(0)) > max {
		stub := map[string]any{"resourceType": "AuditEvent", "recorded": ev["recorded"], "outcome": ev["outcome"],
			"extension": []any{map[string]any{"url": "urn:phivault:syslog-omitted-entities", "valueInteger": len(ents)}}}
		b, _ := json.Marshal(stub)
		return b
	}
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if len(enc(mid)) <= max {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return enc(lo)
}
