package simulate

import (
	"fmt"
	"math"
	"time"
)

// Label is one injected incident: user (and patient, when the scenario
// is about one patient) and the time window of its events.
type Label struct {
	User, Patient, Scenario string
	Start, End              time.Time
}

// Scenarios lists the injected incident kinds.
var Scenarios = []string{"family", "co-worker", "neighbour", "vip", "self", "after-hours",
	"bulk-exfiltration", "dormant-takeover", "credential-stuffing", "break-glass-abuse"}

// planIncidents makes the incident events, grouped by day, and their labels.
func (w *world) planIncidents() (map[int][]event, []Label) {
	r := w.r
	byDay := map[int][]event{}
	var labels []Label
	n := max(2, int(math.Round(w.cfg.IncidentRate*float64(w.cfg.Users*w.cfg.Days)/1000)))
	byPost := map[int][]int{}
	for pi := range w.patients {
		byPost[w.patients[pi].addr.postcode] = append(byPost[w.patients[pi].addr.postcode], pi)
	}
	var vips, emps []int
	for pi, p := range w.patients {
		if p.security != "" {
			vips = append(vips, pi)
		}
		if p.employee >= 0 {
			emps = append(emps, pi)
		}
	}
	// worker picks a user on a working day who passes ok, and a time in their shift.
	worker := func(ok func(*user) bool) (int, int, time.Time) {
		for range 10000 {
			ui, day := r.IntN(len(w.users)), 1+r.IntN(w.cfg.Days-1)
			if w.works(ui, day) && ok(&w.users[ui]) {
				at := w.date(day).Add(time.Duration(shiftStart[w.users[ui].shift])*time.Hour + time.Duration(30+r.IntN(6*60))*time.Minute)
				return ui, day, at
			}
		}
		return -1, 0, time.Time{}
	}
	emit := func(day int, evs []event, scen string, pid string) {
		if len(evs) == 0 {
			return
		}
		byDay[day] = append(byDay[day], evs...)
		labels = append(labels, Label{User: w.users[evs[0].user].id, Patient: pid, Scenario: scen, Start: evs[0].t, End: evs[len(evs)-1].t})
	}
	snoop := func(ui, pi int, at time.Time, bg bool) []event {
		u := &w.users[ui]
		ws := u.ws[0]
		ev := event{user: ui, patient: pi, dept: u.dept, ip: u.ip(ws), ws: wsName(u.dept, ws), outcome: "success"}
		var out []event
		if bg {
			ev.t, ev.action, ev.resType = at, "break-glass", "Patient"
			out = append(out, ev)
		}
		for i := range 1 + r.IntN(3) {
			out = w.chartOpen(r, ev, at.Add(time.Duration(i*(2+r.IntN(20)))*time.Minute+time.Second), u.role, out)
		}
		return out
	}
	clinical := func(u *user) bool { return departments[u.dept].clinical }
	for range n {
		// Patient-level snooping.
		if ui, day, at := worker(func(u *user) bool { return len(u.family1) > 0 }); ui >= 0 {
			if pi := w.users[ui].family1[0]; !w.related(ui, pi) {
				emit(day, snoop(ui, pi, at, false), "family", w.patients[pi].id)
			}
		}
		if ui, day, at := worker(clinical); ui >= 0 && len(emps) > 0 {
			if pi := emps[r.IntN(len(emps))]; !w.related(ui, pi) && w.patients[pi].employee != ui {
				emit(day, snoop(ui, pi, at, false), "co-worker", w.patients[pi].id)
			}
		}
		if ui, day, at := worker(clinical); ui >= 0 {
			l := append(byPost[w.users[ui].addr.postcode], -1)
			if pi := l[r.IntN(len(l))]; pi >= 0 && !w.related(ui, pi) && w.patients[pi].family != w.users[ui].family && w.patients[pi].employee < 0 {
				emit(day, snoop(ui, pi, at, false), "neighbour", w.patients[pi].id)
			}
		}
		if ui, day, at := worker(clinical); ui >= 0 && len(vips) > 0 {
			if pi := vips[r.IntN(len(vips))]; !w.related(ui, pi) {
				emit(day, snoop(ui, pi, at, false), "vip", w.patients[pi].id)
			}
		}
		if ui, day, at := worker(func(u *user) bool { return u.patient >= 0 }); ui >= 0 {
			pi := w.users[ui].patient
			emit(day, snoop(ui, pi, at, false), "self", w.patients[pi].id)
		}
		if ui, day, at := worker(func(u *user) bool { return clinical(u) && u.dept != deptED }); ui >= 0 {
			pi := r.IntN(len(w.patients))
			if r.Float64() < 0.3 && len(vips) > 0 {
				pi = vips[r.IntN(len(vips))]
			}
			if !w.related(ui, pi) {
				emit(day, snoop(ui, pi, at, true), "break-glass-abuse", w.patients[pi].id)
			}
		}
		// User-level incidents.
		if ui, day, _ := worker(func(u *user) bool { return u.shift == shiftDay && clinical(u) }); ui >= 0 {
			at := w.date(day).Add(time.Duration(30+r.IntN(200)) * time.Minute)
			ev := event{user: ui, dept: w.users[ui].dept, ip: fmt.Sprintf("172.16.%d.%d", ui/250, ui%250), ws: "vpn", outcome: "success", patient: -1}
			ev.t, ev.action = at, "login"
			evs := append([]event{ev}, w.browse(ev, at.Add(time.Minute), 8+r.IntN(13), 3*time.Minute, false)...)
			emit(day, evs, "after-hours", "")
		}
		if ui, day, at := worker(clinical); ui >= 0 {
			u := &w.users[ui]
			ev := event{user: ui, dept: u.dept, ip: u.ip(u.ws[0]), ws: wsName(u.dept, u.ws[0]), outcome: "success"}
			emit(day, w.browse(ev, at, 150+r.IntN(250), 20*time.Second, true), "bulk-exfiltration", "")
		}
		for range 50 {
			ui := r.IntN(len(w.users))
			if u := &w.users[ui]; u.dormant {
				day := 1 + r.IntN(w.cfg.Days-1)
				at := w.date(day).Add(time.Duration(60+r.IntN(240)) * time.Minute)
				ev := event{user: ui, dept: u.dept, ip: fmt.Sprintf("185.220.%d.%d", r.IntN(250), r.IntN(250)), ws: "unknown", outcome: "success", patient: -1}
				ev.t, ev.action = at, "login"
				evs := w.browse(ev, at.Add(time.Minute), 20+r.IntN(30), time.Minute, false)
				emit(day, append([]event{ev}, evs...), "dormant-takeover", "")
				break
			}
		}
	}
	for range max(1, n/5) {
		labels = w.stuffing(byDay, labels)
	}
	return byDay, labels
}

// browse reads k random patients, one every step on average.
func (w *world) browse(ev event, at time.Time, k int, step time.Duration, export bool) []event {
	r := w.r
	var out []event
	for i := range k {
		ev.patient = r.IntN(len(w.patients))
		t := at.Add(time.Duration(i) * step).Add(time.Duration(r.IntN(int(step/time.Second))) * time.Second)
		out = w.chartOpen(r, ev, t, "", out)
		if export && r.Float64() < 0.3 {
			e := ev
			e.t, e.action, e.resType = t.Add(time.Second), "export", "Bundle"
			out = append(out, e)
		}
	}
	return out
}

// stuffing tries many accounts from one address; one password works.
func (w *world) stuffing(byDay map[int][]event, labels []Label) []Label {
	r := w.r
	day := 1 + r.IntN(w.cfg.Days-1)
	at := w.date(day).Add(time.Duration(r.IntN(24*60)) * time.Minute)
	ip := fmt.Sprintf("45.%d.%d.%d", 10+r.IntN(200), r.IntN(250), r.IntN(250))
	k := 15 + r.IntN(11)
	for i := range k {
		ui := r.IntN(len(w.users))
		t0 := at.Add(time.Duration(i*20) * time.Second)
		var evs []event
		for j := range 2 + r.IntN(3) {
			evs = append(evs, event{t: t0.Add(time.Duration(j*3) * time.Second), user: ui, action: "login-failed",
				patient: -1, dept: w.users[ui].dept, ip: ip, ws: "unknown", outcome: "failure"})
		}
		if i == k-1 {
			ev := evs[0]
			ev.t, ev.action, ev.outcome = evs[len(evs)-1].t.Add(5*time.Second), "login", "success"
			evs = append(evs, ev)
			evs = append(evs, w.browse(ev, ev.t.Add(time.Minute), 5, time.Minute, false)...)
		}
		byDay[day] = append(byDay[day], evs...)
		labels = append(labels, Label{User: w.users[ui].id, Scenario: "credential-stuffing", Start: evs[0].t, End: evs[len(evs)-1].t})
	}
	return labels
}
