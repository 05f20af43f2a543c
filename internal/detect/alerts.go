package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"time"
)

func (e *Engine) networks(ips []string) {
	nets := map[string]int32{}
	e.ipNet = make([]int32, len(ips))
	for i, ip := range ips {
		p := prefix16(ip)
		n, ok := nets[p]
		if !ok {
			n = int32(len(nets))
			nets[p] = n
		}
		e.ipNet[i] = n
	}
	e.netUsers = make([]int32, len(nets))
	seen := map[uint64]struct{}{}
	for k := range e.ipFirst {
		u, ip := int32(k>>32), int32(uint32(k))
		nk := pairKey(u, e.ipNet[ip])
		if _, ok := seen[nk]; !ok {
			seen[nk] = struct{}{}
			e.netUsers[e.ipNet[ip]]++
		}
	}
}

func (e *Engine) newAlert(u int32, patient string, t int64) *Alert {
	a := &Alert{UserID: e.dir.Staff[u].ID, PatientID: patient, user: u, first: t, last: t}
	e.alerts = append(e.alerts, a)
	return a
}

func (a *Alert) add(mask uint32, t int64) {
	a.mask |= mask
	a.first, a.last = min(a.first, t), max(a.last, t)
	a.Events++
}

func (e *Engine) patientAlert(ev *Event, mask uint32) {
	k := pairKey(ev.User, ev.Patient)
	a := e.patientAlerts[k]
	if a == nil {
		id := "unknown"
		if ev.Patient >= 0 {
			id = e.dir.Patients[ev.Patient].ID
		}
		a = e.newAlert(ev.User, id, ev.T)
		e.patientAlerts[k] = a
	}
	a.add(mask, ev.T)
}

func (e *Engine) userAlertAt(u int32, rule int, d int32, t int64) {
	k := [3]int32{u, int32(rule), d}
	a := e.userAlerts[k]
	if a == nil {
		a = e.newAlert(u, "", t)
		e.userAlerts[k] = a
	}
	a.add(1<<rule, t)
}

func (e *Engine) userAlert(ev *Event, rule int, d int32) { e.userAlertAt(ev.User, rule, d, ev.T) }

// finish runs the rules that need the whole batch, scores every user-day
// and alert, and groups alerts into cases.
func (e *Engine) finish() {
	for _, hits := range e.stuffing {
		if len(hits) >= 5 {
			for _, h := range hits {
				e.userAlertAt(h.user, rStuffing, int32(h.t/day), h.t)
			}
		}
	}
	for ui := range e.users {
		u := &e.users[ui]
		for d, da := range u.days {
			pd := e.peerDay[pairKey(u.group, d)]
			e.anomaly(u, da, pd)
			limit := max(10, u.meanU+4*u.sdU, pd[1].mean()+4*pd[1].sd())
			if float64(da.unexpl) >= limit {
				e.userAlertAt(int32(ui), rSpike, d, int64(d)*day+int64(bits(da.hours))*3600)
			}
		}
	}
	for _, a := range e.alerts {
		d := int32(a.first / day)
		var anom float64
		var why []string
		if da := e.users[a.user].days[d]; da != nil {
			anom, why = float64(da.anom), da.reasons
		}
		a.Score = 1 - (1-ruleScore(a.mask))*(1-0.5*anom)
		a.Score = math.Round(a.Score*1000) / 1000
		a.Rules = ruleNames(a.mask &^ (1 << rNoRelationship))
		for i, r := range Rules {
			if a.mask&(1<<i) != 0 {
				a.Reasons = append(a.Reasons, r.Explain)
			}
		}
		a.Reasons = append(a.Reasons, why...)
		a.FirstSeen, a.LastSeen = time.Unix(a.first, 0).UTC(), time.Unix(a.last, 0).UTC()
		a.CaseID = CaseID(a.UserID)
		h := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%v|%d", a.UserID, a.PatientID, a.Rules, d))
		a.ID = "al-" + hex.EncodeToString(h[:6])
		switch {
		case a.Score >= 0.9:
			a.Severity = "high"
		case a.Score >= 0.7:
			a.Severity = "medium"
		default:
			a.Severity = "low"
		}
	}
	sort.SliceStable(e.alerts, func(i, j int) bool {
		if e.alerts[i].Score != e.alerts[j].Score {
			return e.alerts[i].Score > e.alerts[j].Score
		}
		return e.alerts[i].ID < e.alerts[j].ID
	})
}

// bits returns the lowest set hour (for placing day-level alerts).
func bits(h uint32) int {
	for i := range 24 {
		if h&(1<<i) != 0 {
			return i
		}
	}
	return 0
}

type feature struct {
	v    float64
	text string
}

// anomaly scores one user-day from explainable features, each measured
// against the user's own history and their peer group (same role and
// department) on the same day.
func (e *Engine) anomaly(u *userProf, da *dayAgg, pd [2]stat) {
	g := &e.groups[u.group]
	rate := 0.0
	if u.accesses > 0 {
		rate = float64(u.unexpl) / float64(u.accesses)
	}
	fs := []feature{
		{(float64(da.unexpl)-max(u.meanU, pd[1].mean()))/(max(u.sdU, pd[1].sd())+2) - 2,
			fmt.Sprintf("%d unexplained patients today; usually %.1f, peers %.1f", da.unexpl, u.meanU, pd[1].mean())},
		{(float64(da.distinct)-u.meanD)/(u.sdD+3) - 3, fmt.Sprintf("%d patients today against an own average of %.0f", da.distinct, u.meanD)},
		{(float64(da.distinct)-pd[0].mean())/(pd[0].sd()+3) - 3, fmt.Sprintf("%d patients today against a peer average of %.0f", da.distinct, pd[0].mean())},
		{float64(da.odd) / 3, fmt.Sprintf("%d unexplained accesses at hours this user does not usually work", da.odd)},
		{(rate-g.rateMean)/(g.rate+0.02) - 3, fmt.Sprintf("%.0f%% of this user's accesses are unexplained; peers %.0f%%", 100*rate, 100*g.rateMean)},
	}
	if da.newIP {
		fs = append(fs, feature{1, "login from a network this user had not used before"})
	}
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].v > fs[j].v })
	sum := 0.0
	for _, f := range fs {
		if f.v > 0 {
			sum += f.v
			if len(da.reasons) < 3 {
				da.reasons = append(da.reasons, f.text)
			}
		}
	}
	da.anom = float32(1 - math.Exp(-0.5*sum))
}
