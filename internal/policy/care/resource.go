package care

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/fhir"
)

// reference is a FHIR Reference.
type reference struct {
	Reference string `json:"reference"`
}

// local returns the reference as "Type/id", dropping a base URL and a
// version; "" for a contained, logical or malformed reference.
func (r reference) local() string {
	s := r.Reference
	if s == "" || strings.HasPrefix(s, "#") || strings.HasPrefix(s, "urn:") {
		return ""
	}
	if i := strings.Index(s, "/_history/"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 {
		return ""
	}
	typ, id := parts[len(parts)-2], parts[len(parts)-1]
	if !fhir.IsID(id) || typ == "" {
		return ""
	}
	return typ + "/" + id
}

// period is a FHIR Period.
type period struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// bounds returns the earliest instant of start and the latest of end
// (zero for an absent or unparseable value).
func (p period) bounds() (time.Time, time.Time) {
	s, _ := parseDateTime(p.Start, false)
	e, _ := parseDateTime(p.End, true)
	return s, e
}

// covers reports whether now lies within p (open ends unbounded).
func (p period) covers(now time.Time) bool {
	s, e := p.bounds()
	return (s.IsZero() || !now.Before(s)) && (e.IsZero() || !now.After(e))
}

// parseDateTime parses a FHIR date or dateTime (year, year-month, date, or
// date and time with a zone). A partial value stands for its whole range:
// its first instant, or its last when last is set.
func parseDateTime(s string, last bool) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, f := range []struct {
		layout string
		step   func(time.Time) time.Time
	}{
		{time.RFC3339Nano, nil},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
	} {
		t, err := time.Parse(f.layout, s)
		if err != nil {
			continue
		}
		if last && f.step != nil {
			t = f.step(t).Add(-time.Nanosecond)
		}
		return t, true
	}
	return time.Time{}, false
}

type coding struct {
	Code string `json:"code"`
}

type concept struct {
	Coding []coding `json:"coding"`
}

func hasCode(cs []concept, code string) bool {
	for _, c := range cs {
		for _, cd := range c.Coding {
			if cd.Code == code {
				return true
			}
		}
	}
	return false
}

// careTeamKind returns KindAssignment or KindCareTeam when the CareTeam
// body is active (status active or absent), its period covers now and one
// of actors is a participant whose own period covers now; "" otherwise.
func careTeamKind(body []byte, actors []string, now time.Time) string {
	var ct struct {
		Status      string    `json:"status"`
		Category    []concept `json:"category"`
		Period      period    `json:"period"`
		Participant []struct {
			Member reference `json:"member"`
			Period period    `json:"period"`
		} `json:"participant"`
	}
	if json.Unmarshal(body, &ct) != nil || (ct.Status != "" && ct.Status != "active") || !ct.Period.covers(now) {
		return ""
	}
	for _, p := range ct.Participant {
		if slices.Contains(actors, p.Member.local()) && p.Period.covers(now) {
			if hasCode(ct.Category, AssignmentCode) {
				return KindAssignment
			}
			return KindCareTeam
		}
	}
	return ""
}

// ongoing encounter statuses: an Encounter in one of them without an end
// lasts until now.
var ongoing = map[string]bool{"planned": true, "arrived": true, "triaged": true, "in-progress": true, "onleave": true}

// encounterCurrent reports whether now lies within the Encounter's window:
// from Margin before its start to Margin after its end (or while it is
// ongoing). Cancelled and entered-in-error encounters never count.
func (f *Facts) encounterCurrent(body []byte, now time.Time) bool {
	var enc struct {
		Status string `json:"status"`
		Period period `json:"period"`
	}
	if json.Unmarshal(body, &enc) != nil || enc.Status == "cancelled" || enc.Status == "entered-in-error" {
		return false
	}
	start, end := enc.Period.bounds()
	if start.IsZero() {
		return ongoing[enc.Status] && end.IsZero()
	}
	if end.IsZero() {
		if ongoing[enc.Status] {
			return !now.Before(start.Add(-f.o.Margin))
		}
		_, end = period{End: enc.Period.Start}.bounds()
	}
	return f.within(now, start, end)
}

// appointmentCurrent reports whether now lies within the Appointment's
// window (Margin either side of start..end). Cancelled, no-show and
// entered-in-error appointments, and those without a start, never count.
func (f *Facts) appointmentCurrent(body []byte, now time.Time) bool {
	var ap struct {
		Status string `json:"status"`
		Start  string `json:"start"`
		End    string `json:"end"`
	}
	if json.Unmarshal(body, &ap) != nil {
		return false
	}
	switch ap.Status {
	case "cancelled", "noshow", "entered-in-error":
		return false
	}
	start, ok := parseDateTime(ap.Start, false)
	if !ok {
		return false
	}
	end, ok := parseDateTime(ap.End, true)
	if !ok {
		end = start
	}
	return f.within(now, start, end)
}

func (f *Facts) within(now, start, end time.Time) bool {
	return !now.Before(start.Add(-f.o.Margin)) && !now.After(end.Add(f.o.Margin))
}
