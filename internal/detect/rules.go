package detect

import (
	"strings"
	"time"
)

// Rule is one detection rule, with the sentence an alert shows for it.
type Rule struct {
	Name, Explain string
	Weight        float64 // how strongly the rule alone points to an incident, 0..1
	User          bool    // about the user's behaviour, not one patient
}

// Rules, by bit position.
var Rules = []Rule{
	{"self-access", "the user opened their own patient record", 0.95, false},
	{"family", "the patient shares the user's address (or last name and postcode) and no care relationship explains the access", 0.9, false},
	{"co-worker", "the patient is a member of staff and no care relationship explains the access", 0.8, false},
	{"neighbour", "the patient lives on the user's street and no care relationship explains the access", 0.7, false},
	{"restricted-patient", "the patient's record is restricted or very restricted (VIP) and no care relationship explains the access", 0.8, false},
	{"deceased-patient", "the patient is deceased and no care relationship explains the access", 0.6, false},
	{"after-hours", "unexplained access at an hour the user does not usually work", 0.7, false},
	{"break-glass-unexplained", "break-the-glass on a patient with no encounter, appointment, care team or order linking them to the user", 0.85, false},
	{"unknown-patient", "access to a patient id the directory does not know", 0.5, false},
	{"bulk-access", "many unexplained patients, or many exports or prints, within one hour (exfiltration, ransomware staging)", 0.9, true},
	{"unexplained-spike", "far more unexplained patients in a day than the user's own history and their peer group", 0.75, true},
	{"credential-stuffing", "failed logins to many accounts from one source address within 15 minutes", 0.9, true},
	{"brute-force", "a burst of failed logins to this account", 0.7, true},
	{"probing", "a burst of denied requests", 0.6, true},
	{"dormant-account", "first activity in the log, or after two weeks of silence, from an unfamiliar network at an unusual hour", 0.85, true},
	{"disabled-account", "activity on an account the directory marks inactive", 0.9, true},
	{"new-source-odd-hours", "login from a network this user has never used, at an hour they do not usually work", 0.75, true},
	{"no-relationship", "no encounter, appointment, care team, order or department link between user and patient", 0.2, false},
	{"co-worker-in-care", "the patient is a member of staff being treated elsewhere in the hospital, and nothing links this user to that care", 0.35, false},
	{"same-postcode", "the patient lives in the user's postcode and no care relationship explains the access", 0.4, false},
	{"restricted-patient-in-care", "the patient's record is restricted (VIP); they are in the hospital now but nothing links this user to their care", 0.35, false},
	{"break-glass-in-care", "break-the-glass on a patient who is in the hospital now but not linked to this user", 0.35, false},
}

const (
	rSelf = iota
	rFamily
	rCoworker
	rNeighbour
	rRestricted
	rDeceased
	rAfterHours
	rBreakGlass
	rUnknownPatient
	rBulk
	rSpike
	rStuffing
	rBruteForce
	rProbing
	rDormant
	rDisabled
	rNewSource
	rNoRelationship
	rCoworkerInCare
	rSamePostcode
	rRestrictedInCare
	rBreakGlassInCare
)

// alertThreshold is the combined rule score from which a patient-level
// finding becomes an alert; weaker findings only raise the pair's score.
const alertThreshold = 0.5

// ruleScore combines the rules set in mask as independent evidence.
func ruleScore(mask uint32) float64 {
	miss := 1.0
	for i, r := range Rules {
		if mask&(1<<i) != 0 {
			miss *= 1 - r.Weight
		}
	}
	return 1 - miss
}

func ruleNames(mask uint32) []string {
	var out []string
	for i, r := range Rules {
		if mask&(1<<i) != 0 {
			out = append(out, r.Name)
		}
	}
	return out
}

func prefix16(ip string) string {
	if i := strings.IndexByte(ip, '.'); i >= 0 {
		if j := strings.IndexByte(ip[i+1:], '.'); j >= 0 {
			return ip[:i+1+j]
		}
	}
	if i := strings.IndexByte(ip, ':'); i >= 0 { // IPv6: the first two groups
		if j := strings.IndexByte(ip[i+1:], ':'); j >= 0 {
			return ip[:i+1+j]
		}
	}
	return ip
}

// foreign tells whether a source address is on a network fewer than three
// users have used: not a hospital workstation network.
func (e *Engine) foreign(ip int32) bool { return e.netUsers[e.ipNet[ip]] < 3 }

// check is pass 2: it applies the rules to one event.
func (e *Engine) check(ev *Event) {
	u := &e.users[ev.User]
	s := &e.dir.Staff[ev.User]
	d := int32(ev.T / day)
	da := u.days[d]
	hour := int((ev.T % day) / 3600)
	bucket := ev.T / 900
	if s.Disabled && s.InDirectory {
		e.userAlert(ev, rDisabled, d)
	}
	if ev.Failed && ev.Action != ActLoginFailed {
		if e.bump(&e.denials, pairKey(ev.User, int32(bucket))) == 10 {
			e.userAlert(ev, rProbing, d)
		}
	}
	switch ev.Action {
	case ActLoginFailed:
		if e.bump(&e.failures, pairKey(ev.User, int32(bucket))) == 8 {
			e.userAlert(ev, rBruteForce, d)
		}
		k := [3]int32{ev.IP, int32(bucket), ev.User}
		if _, seen := e.ipBucketUsers[k]; !seen {
			e.ipBucketUsers[k] = struct{}{}
			b := [2]int32{ev.IP, int32(bucket)}
			e.stuffing[b] = append(e.stuffing[b], stuffHit{ev.User, ev.T})
		}
		return
	case ActLogin:
		first := e.ipFirst[pairKey(ev.User, ev.IP)] == ev.T
		if first && e.foreign(ev.IP) {
			da.newIP = true
			if e.reactivated(ev.User, d) || d == e.users[ev.User].sortedDays[0] {
				if !e.groupUsualHour(u.group, hour) {
					e.userAlert(ev, rDormant, d)
				}
			} else if !e.usualHour(ev.User, d, hour) && ev.T-u.first > 3*day {
				e.userAlert(ev, rNewSource, d)
			}
		}
		return
	case ActLogout:
		return
	}
	if ev.Patient == -1 {
		return
	}
	var mask uint32
	if ev.Patient == -2 {
		mask = 1 << rUnknownPatient
		e.patientAlert(ev, mask)
		return
	}
	pi := e.pairIdx[pairKey(ev.User, ev.Patient)]
	pair := &e.pairs[pi]
	p := &e.dir.Patients[ev.Patient]
	if p.Employee == ev.User || s.Patient == ev.Patient {
		mask |= 1 << rSelf
	}
	kind := e.dir.Explain(ev.User, ev.Patient, ev.T, ev.Dept, s.Dept)
	if kind == 0 {
		admin := e.groups[u.group].admin && e.dir.InCare(ev.Patient, ev.T, beforeEnc, afterCare)
		sameAddr := s.Line != "" && s.Line == p.Line && s.Postcode == p.Postcode
		samePost := s.Postcode != "" && s.Postcode == p.Postcode
		family := mask&(1<<rSelf) == 0 && (sameAddr || (samePost && s.Family != "" && strings.EqualFold(s.Family, p.Family)))
		if family {
			mask |= 1 << rFamily
		}
		// A patient in the hospital now makes an unlinked clinician's
		// access more plausible (consults, cover): weaker evidence.
		inCare := e.dir.InCare(ev.Patient, ev.T, 24*time.Hour, 24*time.Hour)
		if ev.Action == ActBreakGlass {
			mask |= 1 << pick(inCare, rBreakGlassInCare, rBreakGlass)
		}
		if !admin {
			mask |= 1 << rNoRelationship
			if !family && mask&(1<<rSelf) == 0 {
				switch {
				case samePost && street(s.Line) == street(p.Line) && !inCare:
					mask |= 1 << rNeighbour
				case samePost && !inCare:
					mask |= 1 << rSamePostcode
				}
				switch {
				case p.Employee >= 0 && inCare:
					mask |= 1 << rCoworkerInCare
				case p.Employee >= 0:
					mask |= 1 << rCoworker
				}
			}
			if p.Restricted != "" {
				mask |= 1 << pick(inCare, rRestrictedInCare, rRestricted)
			}
			if p.Deceased {
				mask |= 1 << rDeceased
			}
			if !e.usualHour(ev.User, d, hour) {
				mask |= 1 << rAfterHours
				da.odd++
			}
			hb := ev.T / 3600
			if pair.bulkHour != hb {
				pair.bulkHour = hb
				if e.bump(&e.bulk, pairKey(ev.User, int32(hb))) == 20 {
					e.userAlert(ev, rBulk, d)
				}
			}
		}
	} else if ev.Action == ActBreakGlass {
		e.reviews++
	}
	if ev.Action == ActExport || ev.Action == ActPrint {
		if e.bump(&e.exports, pairKey(ev.User, int32(ev.T/3600))) == 20 {
			e.userAlert(ev, rBulk, d)
		}
	}
	pair.rules |= mask
	if ruleScore(pair.rules) >= alertThreshold {
		e.patientAlert(ev, pair.rules)
	}
}

func (e *Engine) bump(m *map[uint64]int32, k uint64) int32 {
	(*m)[k]++
	return (*m)[k]
}

func pick(c bool, a, b int) int {
	if c {
		return a
	}
	return b
}
