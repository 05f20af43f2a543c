package simulate

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// world is the simulated hospital: who works where, who the patients are
// and which encounters connect them.
type world struct {
	cfg      Config
	r        *rand.Rand
	users    []user
	patients []patient
	encs     []encounter
	staff    [][3][]int // [dept][shift] -> working user indexes
	nStreets int
}

func (w *world) date(day int) time.Time { return w.cfg.Start.AddDate(0, 0, day) }

func randBirth(r *rand.Rand, minAge, maxAge int) string {
	y := 2026 - minAge - r.IntN(maxAge-minAge+1)
	return fmt.Sprintf("%04d-%02d-%02d", y, 1+r.IntN(12), 1+r.IntN(28))
}

func (w *world) randAddr() address {
	s := w.r.IntN(w.nStreets)
	return address{num: 1 + w.r.IntN(180), street: s, postcode: s / 5}
}

// buildPopulation makes the staff and the patients. Some staff are also
// patients (matched by identifier or by name and birth date), some have
// family among the patients, some patients are VIPs or deceased.
func (w *world) buildPopulation() {
	r := w.r
	w.nStreets = max(w.cfg.Patients/12, 50)
	// The department mix varies with the seed.
	weights := make([]float64, len(departments))
	var total float64
	for i, d := range departments {
		wgt := 1.0
		switch {
		case i == deptBilling || i == deptHIM:
			wgt = 0.25
		case i == deptED || i == deptICU:
			wgt = 1.4
		case !d.clinical:
			wgt = 0.3
		}
		weights[i] = wgt * (0.7 + 0.6*r.Float64())
		total += weights[i]
	}
	w.staff = make([][3][]int, len(departments))
	w.users = make([]user, w.cfg.Users)
	for i := range w.users {
		x := r.Float64() * total
		d := 0
		for d = 0; d < len(weights)-1 && x >= weights[d]; d++ {
			x -= weights[d]
		}
		u := user{
			id: fmt.Sprintf("u%05d", i+1), given: pickS(r, givens), family: pickS(r, families),
			birth: randBirth(r, 22, 66), addr: w.randAddr(), dept: d, patient: -1, off: r.IntN(7),
		}
		roll := r.Float64()
		switch {
		case !departments[d].clinical:
			u.role = map[int]string{deptBilling: "billing", deptHIM: "health-information"}[d]
		case d == deptRadiology:
			u.role = "technician"
			if roll < 0.3 {
				u.role = "physician"
			}
		case roll < 0.25:
			u.role = "physician"
		case roll < 0.35:
			u.role = "resident"
		case roll < 0.45:
			u.role = "clerk"
		default:
			u.role = "nurse"
		}
		if u.role == "nurse" || u.role == "resident" || d == deptED || d == deptICU || (u.role == "technician" && r.Float64() < 0.3) {
			u.shift = r.IntN(3) // these work round the clock
		}
		if u.role == "physician" && departments[d].inpatient > 0 && r.Float64() < 0.1 {
			u.shift = shiftNight // hospitalists on night cover
		}
		nws := 1 + r.IntN(3)
		for range nws {
			u.ws = append(u.ws, r.IntN(max(w.cfg.Users/len(departments)/2, 4)))
		}
		u.dormant = r.Float64() < 0.02 || i%50 == 17
		if r.Float64() < 0.12 && w.cfg.Days > 10 {
			u.vacFrom = r.IntN(w.cfg.Days - 5)
			u.vacTo = u.vacFrom + 5 + r.IntN(12)
		}
		w.users[i] = u
		if !u.dormant {
			w.staff[d][u.shift] = append(w.staff[d][u.shift], i)
		}
	}
	w.patients = make([]patient, w.cfg.Patients)
	for i := range w.patients {
		p := patient{id: fmt.Sprintf("p%06d", i+1), given: pickS(r, givens), family: pickS(r, families),
			birth: randBirth(r, 0, 95), addr: w.randAddr(), employee: -1}
		switch x := r.Float64(); {
		case x < 0.002:
			p.security = "V"
		case x < 0.004:
			p.security = "R"
		}
		p.deceased = r.Float64() < 0.01
		w.patients[i] = p
	}
	// Staff who are patients, and staff families: overwrite random patients.
	taken := make([]bool, w.cfg.Patients)
	take := func() int {
		for {
			pi := r.IntN(w.cfg.Patients)
			if !taken[pi] {
				taken[pi] = true
				return pi
			}
		}
	}
	for i := range w.users {
		u := &w.users[i]
		if r.Float64() < 0.2 {
			pi := take()
			p := &w.patients[pi]
			p.given, p.family, p.birth, p.addr, p.deceased = u.given, u.family, u.birth, u.addr, false
			p.employee, p.byIdentifier = i, r.Float64() < 0.6
			u.patient = pi
		}
		if r.Float64() < 0.3 {
			for range 1 + r.IntN(2) {
				pi := take()
				p := &w.patients[pi]
				p.family, p.addr, p.deceased = u.family, u.addr, false
				u.family1 = append(u.family1, pi)
			}
		}
	}
}
