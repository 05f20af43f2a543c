package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"
)

// LiveRules are the rules only the live detector raises: they concern the
// server's own break-the-glass windows, which imported logs do not carry.
var LiveRules = []Rule{
	{"break-glass", "the user opened a break-the-glass window; every use is reviewed", 0.6, true},
	{"break-glass-access", "the user reached this patient's record through break-the-glass", 0.6, false},
}

// Live thresholds: the batch rules' numbers, counted as events arrive.
const (
	bulkPatients   = 20 // distinct unexplained patients (or exports) per user and hour
	bruteFailures  = 8  // failed logins per account and 15 minutes
	probeDenials   = 10 // denied requests per user and 15 minutes
	stuffAccounts  = 5  // accounts with failed logins from one source in 15 minutes
	defaultBGFor   = 60 * time.Minute
	liveStateLimit = 200_000 // entries per counter map before old windows are dropped
)

// finding is one event's contribution to one alert.
type finding struct {
	id, user, patient string
	rules             []string
	t                 time.Time
	leaf              uint64
}

// scoreRules combines rules (by name, from Rules and LiveRules) as
// independent evidence, as the batch detector does, and returns the
// score, severity and the rules' explanations.
func scoreRules(names []string) (float64, string, []string) {
	miss := 1.0
	var why []string
	for _, n := range names {
		for _, set := range [][]Rule{Rules, LiveRules} {
			for _, r := range set {
				if r.Name == n {
					miss *= 1 - r.Weight
					why = append(why, r.Explain)
				}
			}
		}
	}
	score := math.Round((1-miss)*1000) / 1000
	sev := "low"
	switch {
	case score >= 0.9:
		sev = "high"
	case score >= 0.7:
		sev = "medium"
	}
	return score, sev, why
}

// alertID is an alert's stable id: the same findings after a replay land
// in the same alert.
func alertID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x1f")))
	return "al-" + hex.EncodeToString(h[:8])
}

// liveState is what the live rules remember between events: open
// break-the-glass windows and the counters behind the burst rules. It is
// bounded: counters are keyed by time window and dropped when full.
type liveState struct {
	dir      *Directory
	bgUntil  map[string]time.Time      // user -> end of their break-the-glass window
	counts   map[string]int            // rule|user|window -> count
	seen     map[string]struct{}       // rule|user|window|patient -> counted
	stuffing map[string]map[string]int // source|window -> accounts seen
}

func newLiveState(dir *Directory) *liveState {
	if dir == nil {
		dir = &Directory{staffIdx: map[string]int32{}, patIdx: map[string]int32{}, deptIdx: map[string]int16{}}
	}
	return &liveState{dir: dir, bgUntil: map[string]time.Time{}, counts: map[string]int{},
		seen: map[string]struct{}{}, stuffing: map[string]map[string]int{}}
}

func (s *liveState) bump(key string) int {
	if len(s.counts) >= liveStateLimit {
		clear(s.counts)
	}
	s.counts[key]++
	return s.counts[key]
}

// once reports whether key is new.
func (s *liveState) once(key string) bool {
	if _, ok := s.seen[key]; ok {
		return false
	}
	if len(s.seen) >= liveStateLimit {
		clear(s.seen)
	}
	s.seen[key] = struct{}{}
	return true
}

// apply runs the rules over one event, in log order, and returns its
// findings (at most one per alert).
func (s *liveState) apply(ev *liveEvent) []finding {
	act, ok := ev.action()
	if ev.User == "" {
		return nil
	}
	var out []finding
	add := func(id, patient string, t time.Time, rules ...string) {
		for i := range out {
			if out[i].id == id {
				for _, r := range rules {
					if !containsStr(out[i].rules, r) {
						out[i].rules = append(out[i].rules, r)
					}
				}
				return
			}
		}
		out = append(out, finding{id: id, user: ev.User, patient: patient, rules: rules, t: t, leaf: ev.Index})
	}
	day := ev.T.Format("2006-01-02")
	userAlert := func(rule string) { add(alertID("user", ev.User, rule, day), "", ev.T, rule) }
	q := ev.T.Unix() / 900
	hour := ev.T.Unix() / 3600
	ui, known := s.dir.staffIdx[ev.User]
	var st *Staff
	if known {
		st = &s.dir.Staff[ui]
		if st.Disabled && st.InDirectory {
			userAlert("disabled-account")
		}
	}
	if !ev.Allowed && ok && act != ActLoginFailed {
		if s.bump(fmt.Sprintf("probe|%s|%d", ev.User, q)) >= probeDenials {
			userAlert("probing")
		}
	}
	if !ok {
		return out
	}
	switch act {
	case ActLoginFailed:
		if s.bump(fmt.Sprintf("fail|%s|%d", ev.User, q)) >= bruteFailures {
			userAlert("brute-force")
		}
		if ev.SourceIP != "" {
			k := fmt.Sprintf("%s|%d", ev.SourceIP, q)
			accts := s.stuffing[k]
			if accts == nil {
				if len(s.stuffing) >= liveStateLimit {
					clear(s.stuffing)
				}
				accts = map[string]int{}
				s.stuffing[k] = accts
			}
			accts[ev.User]++
			if len(accts) >= stuffAccounts {
				for u := range accts {
					add(alertID("user", u, "credential-stuffing", day), "", ev.T, "credential-stuffing")
					out[len(out)-1].user = u
				}
			}
		}
		return out
	case ActLogin, ActLogout:
		return out
	case ActBreakGlass:
		if !ev.Allowed || ev.failed() {
			return out
		}
		until := ev.T.Add(defaultBGFor)
		if t, err := time.Parse(time.RFC3339, ev.Until); err == nil && t.After(ev.T) {
			until = t
		}
		s.bgUntil[ev.User] = until
		// One alert per opening: every use of break-the-glass is reviewed.
		add(alertID("break-glass", ev.User, ev.T.Format(time.RFC3339Nano)), "", ev.T, "break-glass")
		return out
	}
	if !ev.Allowed {
		return out
	}
	underBG := ev.BreakGlass || ev.T.Before(s.bgUntil[ev.User])
	for _, pid := range ev.Patients {
		rules := s.patientRules(ev, act, ui, st, pid, underBG)
		reads := act == ActRead || act == ActSearch || act == ActExport || act == ActPrint
		if pi, ok := s.dir.patIdx[pid]; reads && (!ok || st == nil || s.dir.Explain(ui, pi, ev.T.Unix(), -1, st.Dept) == 0) {
			if s.once(fmt.Sprintf("bulk|%s|%d|%s", ev.User, hour, pid)) &&
				s.bump(fmt.Sprintf("bulk|%s|%d", ev.User, hour)) >= bulkPatients {
				userAlert("bulk-access")
			}
		}
		if act == ActExport || act == ActPrint {
			if s.bump(fmt.Sprintf("export|%s|%d", ev.User, hour)) >= bulkPatients {
				userAlert("bulk-access")
			}
		}
		if score, _, _ := scoreRules(rules); score >= alertThreshold {
			add(alertID("patient", ev.User, pid, day), pid, ev.T, rules...)
		}
	}
	return out
}

// patientRules applies the batch detector's patient rules (rules.go,
// check) to one access, without the rules that need a learned baseline
// (after-hours, hospital-wide roles), and flags break-the-glass use.
func (s *liveState) patientRules(ev *liveEvent, act uint8, ui int32, st *Staff, pid string, underBG bool) []string {
	var rules []string
	if underBG {
		rules = append(rules, "break-glass-access")
	}
	pi, known := s.dir.patIdx[pid]
	if !known || st == nil {
		return rules
	}
	p := &s.dir.Patients[pi]
	self := p.Employee == ui || st.Patient == pi
	if self {
		rules = append(rules, Rules[rSelf].Name)
	}
	t := ev.T.Unix()
	if s.dir.Explain(ui, pi, t, -1, st.Dept) != 0 {
		return rules
	}
	sameAddr := st.Line != "" && st.Line == p.Line && st.Postcode == p.Postcode
	samePost := st.Postcode != "" && st.Postcode == p.Postcode
	family := !self && (sameAddr || (samePost && st.Family != "" && strings.EqualFold(st.Family, p.Family)))
	if family {
		rules = append(rules, Rules[rFamily].Name)
	}
	inCare := s.dir.InCare(pi, t, 24*time.Hour, 24*time.Hour)
	if underBG || act == ActBreakGlass {
		rules = append(rules, Rules[pick(inCare, rBreakGlassInCare, rBreakGlass)].Name)
	}
	rules = append(rules, Rules[rNoRelationship].Name)
	if !family && !self {
		switch {
		case samePost && street(st.Line) == street(p.Line) && !inCare:
			rules = append(rules, Rules[rNeighbour].Name)
		case samePost && !inCare:
			rules = append(rules, Rules[rSamePostcode].Name)
		}
		switch {
		case p.Employee >= 0 && inCare:
			rules = append(rules, Rules[rCoworkerInCare].Name)
		case p.Employee >= 0:
			rules = append(rules, Rules[rCoworker].Name)
		}
	}
	if p.Restricted != "" {
		rules = append(rules, Rules[pick(inCare, rRestrictedInCare, rRestricted)].Name)
	}
	if p.Deceased {
		rules = append(rules, Rules[rDeceased].Name)
	}
	return rules
}
