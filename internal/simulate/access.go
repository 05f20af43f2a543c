package simulate

import (
	"math/rand/v2"
	"slices"
	"time"
)

// event is one row of access.csv.
type event struct {
	t       time.Time
	user    int
	action  string
	patient int // -1: none
	dept    int // the department the user is logged into
	resType string
	ip, ws  string
	outcome string
}

// dayIndex holds what is going on in the hospital on one day.
type dayIndex struct {
	active  [][]int       // [dept] encounters in progress
	recent  [][]int       // [dept] encounters ended in the last five days
	ended   []int         // encounters ended 1-10 days ago (billing, records)
	ordered [][]int       // [performing dept] orders placed in the last two days
	mine    map[int][]int // user -> encounters they take part in
	appts   map[int][]int // physician -> patients with an appointment today
}

func (w *world) indexDay(day int) *dayIndex {
	from, to := w.date(day), w.date(day+1)
	x := &dayIndex{active: make([][]int, len(departments)), recent: make([][]int, len(departments)),
		ordered: make([][]int, len(departments)), mine: map[int][]int{}, appts: map[int][]int{}}
	for ei := range w.encs {
		e := &w.encs[ei]
		if e.start.Before(to) && e.end.After(from) {
			x.active[e.dept] = append(x.active[e.dept], ei)
			for _, ui := range e.participants {
				x.mine[ui] = append(x.mine[ui], ei)
			}
			for _, ui := range e.careTeam {
				x.mine[ui] = append(x.mine[ui], ei)
			}
		} else if e.end.Before(from) && e.end.After(from.AddDate(0, 0, -5)) {
			x.recent[e.dept] = append(x.recent[e.dept], ei)
		}
		if e.end.Before(from) && e.end.After(from.AddDate(0, 0, -10)) {
			x.ended = append(x.ended, ei)
		}
		if e.order >= 0 && e.orderAt.Before(to) && e.orderAt.After(from.AddDate(0, 0, -2)) {
			x.ordered[e.order] = append(x.ordered[e.order], ei)
		}
		if !e.appt.IsZero() && !e.appt.Before(from) && e.appt.Before(to) {
			x.appts[e.participants[0]] = append(x.appts[e.participants[0]], e.patient)
		}
	}
	return x
}

var chartTypes = []string{"Patient", "Observation", "Encounter", "Condition", "MedicationRequest", "DiagnosticReport", "DocumentReference"}

func (w *world) works(ui, day int) bool {
	u := &w.users[ui]
	if u.dormant || (day >= u.vacFrom && day < u.vacTo) {
		return false
	}
	return (day+u.off)%7 < 5
}

// legitDay appends the ordinary work of one day.
func (w *world) legitDay(day int, x *dayIndex, out []event) []event {
	r := w.r
	pickEnc := func(l []int) int {
		if len(l) == 0 {
			return -1
		}
		return w.encs[l[r.IntN(len(l))]].patient
	}
	for ui := range w.users {
		if !w.works(ui, day) {
			continue
		}
		u := &w.users[ui]
		ctx := u.dept
		ws := u.ws[r.IntN(len(u.ws))]
		covering := departments[u.dept].clinical && u.dept != deptRadiology && r.Float64() < 0.015
		if covering {
			ctx = 1 + r.IntN(deptICU)
			ws = r.IntN(20)
		}
		ip, wsn := deptIP(ctx, ws), wsName(ctx, ws)
		start := w.date(day).Add(time.Duration(shiftStart[u.shift])*time.Hour + time.Duration(r.IntN(20)-10)*time.Minute)
		base := event{user: ui, patient: -1, dept: ctx, ip: ip, ws: wsn, outcome: "success"}
		if r.Float64() < 0.03 {
			ev := base
			ev.t, ev.action, ev.outcome = start.Add(-40*time.Second), "login-failed", "failure"
			out = append(out, ev)
		}
		ev := base
		ev.t, ev.action = start, "login"
		out = append(out, ev)
		n := 20 + r.IntN(21)
		switch u.role {
		case "nurse":
			n += 10
		case "clerk", "technician", "billing", "health-information":
			n = 15 + r.IntN(16)
		case "resident":
			if (day+u.off)%7 == 1 {
				n += 30 // teaching rounds: the whole ward in a morning
			}
		}
		for range n {
			pi := -1
			x1 := r.Float64()
			switch {
			case u.role == "billing" || u.role == "health-information":
				pi = pickEnc(x.ended)
			case u.dept == deptRadiology && !covering:
				if x1 < 0.95 {
					pi = pickEnc(x.ordered[deptRadiology])
				} else {
					pi = pickEnc(x.active[deptED])
				}
			case x1 < 0.5 && len(x.mine[ui]) > 0 && !covering:
				pi = pickEnc(x.mine[ui])
			case x1 < 0.9:
				pi = pickEnc(x.active[ctx])
			case x1 < 0.95:
				pi = pickEnc(x.recent[ctx])
			case x1 < 0.975 && len(x.appts[ui]) > 0:
				pi = x.appts[ui][r.IntN(len(x.appts[ui]))]
			case x1 < 0.985:
				pi = pickEnc(x.ordered[ctx])
			default:
				pi = pickEnc(x.active[1+r.IntN(deptICU)]) // curbside consult: not in the record
			}
			if pi < 0 {
				pi = pickEnc(x.active[ctx])
			}
			if pi < 0 || pi == u.patient {
				continue // opening one's own record is never part of the job
			}
			t := start.Add(time.Duration(r.IntN(8*3600)) * time.Second)
			ev := base
			ev.patient = pi
			if ctx == deptED && r.Float64() < 0.02 {
				ev.t, ev.action, ev.resType = t, "break-glass", "Patient"
				out = append(out, ev)
			}
			out = w.chartOpen(r, ev, t, u.role, out)
		}
		ev = base
		ev.t, ev.action = start.Add(8*time.Hour+time.Duration(r.IntN(30))*time.Minute), "logout"
		out = append(out, ev)
	}
	return out
}

// chartOpen appends the one to three events of opening a chart.
func (w *world) chartOpen(r *rand.Rand, ev event, t time.Time, role string, out []event) []event {
	k := 1 + r.IntN(3)
	for i := range k {
		ev.t = t.Add(time.Duration(i*(5+r.IntN(40))) * time.Second)
		ev.resType = chartTypes[r.IntN(len(chartTypes))]
		switch x := r.Float64(); {
		case i == 0 && x < 0.3:
			ev.action, ev.resType = "search", "Patient"
		case role == "clerk" && x < 0.5:
			ev.action = "update"
		case x < 0.05:
			ev.action = "create"
		case x < 0.07:
			ev.action = "update"
		case x < 0.075:
			ev.action = "print"
		default:
			ev.action = "read"
		}
		out = append(out, ev)
	}
	return out
}

func sortEvents(evs []event) {
	slices.SortStableFunc(evs, func(a, b event) int { return a.t.Compare(b.t) })
}
