package simulate

import (
	"slices"
	"time"
)

// roleStaff lists a department's staff of one role, across shifts.
func (w *world) roleStaff(d int, roles ...string) []int {
	var out []int
	for s := range 3 {
		for _, ui := range w.staff[d][s] {
			if slices.Contains(roles, w.users[ui].role) {
				out = append(out, ui)
			}
		}
	}
	return out
}

// buildEncounters makes the care relationships: encounters from a week
// before the first day to the last day, with their participants, care
// teams, orders and follow-up appointments.
func (w *world) buildEncounters() {
	r := w.r
	var employees []int
	for pi := range w.patients {
		if w.patients[pi].employee >= 0 {
			employees = append(employees, pi)
		}
	}
	for day := -7; day < w.cfg.Days; day++ {
		for d, dep := range departments {
			if dep.encPerUser == 0 {
				continue
			}
			docs := w.roleStaff(d, "physician")
			nurses := w.roleStaff(d, "nurse", "resident")
			all := w.roleStaff(d, "physician", "nurse", "resident")
			if len(all) == 0 {
				continue
			}
			if len(docs) == 0 {
				docs = all
			}
			if len(nurses) == 0 {
				nurses = all
			}
			x := float64(len(all)) * dep.encPerUser * (0.8 + 0.4*r.Float64())
			n := int(x)
			if r.Float64() < x-float64(n) {
				n++
			}
			for range n {
				pi := r.IntN(len(w.patients))
				if len(employees) > 0 && r.Float64() < 0.03 {
					pi = employees[r.IntN(len(employees))]
				}
				if w.patients[pi].deceased {
					continue
				}
				e := encounter{id: len(w.encs) + 1, patient: pi, dept: d, order: -1}
				base := w.date(day)
				inpatient := r.Float64() < dep.inpatient
				switch {
				case d == deptED:
					e.start = base.Add(time.Duration(r.IntN(24*60)) * time.Minute)
					e.end = e.start.Add(time.Duration(120+r.IntN(360)) * time.Minute)
				case inpatient:
					e.start = base.Add(time.Duration(r.IntN(24*60)) * time.Minute)
					e.end = e.start.Add(time.Duration(24+r.IntN(24*5)) * time.Hour)
				default:
					e.start = base.Add(time.Duration(8*60+r.IntN(9*60)) * time.Minute)
					e.end = e.start.Add(time.Duration(30+r.IntN(60)) * time.Minute)
					if r.Float64() < 0.25 {
						e.appt = base.AddDate(0, 0, 7+r.IntN(14)).Add(time.Duration(9+r.IntN(7)) * time.Hour)
					}
				}
				e.participants = append(e.participants, docs[r.IntN(len(docs))])
				for range 1 + r.IntN(2) {
					e.participants = append(e.participants, nurses[r.IntN(len(nurses))])
				}
				if inpatient {
					for range 3 + r.IntN(3) {
						e.careTeam = append(e.careTeam, all[r.IntN(len(all))])
					}
				}
				if r.Float64() < 0.25 {
					e.order = deptRadiology
					if r.Float64() < 0.4 {
						e.order = 1 + r.IntN(deptICU-1)
					}
					e.orderAt = e.start.Add(time.Duration(30+r.IntN(300)) * time.Minute)
				}
				e.medOrder = r.Float64() < 0.4
				w.patients[pi].encs = append(w.patients[pi].encs, int32(len(w.encs)))
				w.encs = append(w.encs, e)
			}
		}
	}
}

// related tells whether the directory links user ui and patient pi in any
// way a detector could use; snooping targets are chosen among unrelated
// patients so that the ground truth is unambiguous.
func (w *world) related(ui, pi int) bool {
	u := &w.users[ui]
	for _, ei := range w.patients[pi].encs {
		e := &w.encs[ei]
		if e.dept == u.dept || e.order == u.dept || slices.Contains(e.participants, ui) || slices.Contains(e.careTeam, ui) {
			return true
		}
	}
	return false
}
