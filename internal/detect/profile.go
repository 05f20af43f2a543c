package detect

import (
	"math"
	"slices"
)

const day = 86400

type dayAgg struct {
	hours    uint32 // bit h: active in hour h
	events   int32
	distinct int32 // distinct patients
	unexpl   int32 // distinct patients with no explanation
	odd      int32 // unexplained accesses at the user's unusual hours (pass 2)
	newIP    bool  // a source never seen for this user or the hospital (pass 2)
	anom     float32
	reasons  []string
}

type userProf struct {
	days           map[int32]*dayAgg
	hourDays       [24]int32
	group          int32
	first          int64
	accesses       int32
	unexpl, inCare int32 // unexplained accesses; of those, patient had an encounter somewhere
	meanD, sdD     float64
	meanU, sdU     float64
	sortedDays     []int32
}

type pairAgg struct {
	first, last  int64
	events       int32
	direct       int32 // explained by a relation
	inCare       int32 // unexplained, but the patient had an encounter somewhere
	lastDay      int32
	unexplDay    int32
	bulkHour     int64
	rules        uint32
	firstExplain uint8
}

type groupProf struct {
	name           string
	users          int
	rateMean, rate float64 // unexplained rate: mean and standard deviation over users
	admin          bool    // works hospital-wide: unexplained access is routine, to patients in care
	hourDays       [24]int32
	activeDays     int32
}

type stat struct{ n, sum, sq float64 }

func (s *stat) add(x float64) { s.n++; s.sum += x; s.sq += x * x }
func (s stat) mean() float64 {
	if s.n == 0 {
		return 0
	}
	return s.sum / s.n
}
func (s stat) sd() float64 {
	if s.n < 2 {
		return 0
	}
	return math.Sqrt(max(0, s.sq/s.n-s.mean()*s.mean()))
}

func pairKey(u, p int32) uint64 { return uint64(uint32(u))<<32 | uint64(uint32(p)) }

// observe is pass 1: it learns each user's and peer group's habits.
func (e *Engine) observe(ev *Event) {
	u := e.prof(ev.User)
	d := int32(ev.T / day)
	da := u.days[d]
	if da == nil {
		da = &dayAgg{}
		u.days[d] = da
	}
	da.events++
	da.hours |= 1 << ((ev.T % day) / 3600)
	if u.first == 0 || ev.T < u.first {
		u.first = ev.T
	}
	e.minT = min(e.minT, ev.T)
	e.maxT = max(e.maxT, ev.T)
	ipk := pairKey(ev.User, ev.IP)
	if t, ok := e.ipFirst[ipk]; !ok || ev.T < t {
		if !ok {
			e.ipUsers[ev.IP]++
		}
		e.ipFirst[ipk] = ev.T
	}
	if ev.Patient < 0 {
		return
	}
	s := &e.dir.Staff[ev.User]
	kind := e.dir.Explain(ev.User, ev.Patient, ev.T, ev.Dept, s.Dept)
	pk := pairKey(ev.User, ev.Patient)
	pi, ok := e.pairIdx[pk]
	if !ok {
		pi = int32(len(e.pairs))
		e.pairIdx[pk] = pi
		e.pairs = append(e.pairs, pairAgg{first: ev.T, last: ev.T, lastDay: -1, unexplDay: -1, bulkHour: -1})
	}
	p := &e.pairs[pi]
	p.events++
	p.first, p.last = min(p.first, ev.T), max(p.last, ev.T)
	if p.lastDay != d {
		p.lastDay = d
		da.distinct++
	}
	u.accesses++
	if kind != 0 {
		p.direct++
		return
	}
	u.unexpl++
	if p.unexplDay != d {
		p.unexplDay = d
		da.unexpl++
	}
	if e.dir.InCare(ev.Patient, ev.T, beforeEnc, afterCare) {
		p.inCare++
		u.inCare++
	}
}

func (e *Engine) prof(u int32) *userProf {
	for int(u) >= len(e.users) {
		e.users = append(e.users, userProf{days: map[int32]*dayAgg{}, group: -1})
	}
	p := &e.users[u]
	if p.group < 0 {
		s := &e.dir.Staff[u]
		dept := ""
		if s.Dept >= 0 {
			dept = e.dir.Depts[s.Dept]
		}
		key := s.Role + " in " + dept
		g, ok := e.groupIdx[key]
		if !ok {
			g = int32(len(e.groups))
			e.groupIdx[key] = g
			e.groups = append(e.groups, groupProf{name: key})
		}
		p.group = g
	}
	return p
}

// learn turns pass 1's counts into baselines.
func (e *Engine) learn() {
	for ui := range e.dir.Staff {
		e.prof(int32(ui))
	}
	rates := make([]stat, len(e.groups))
	inCare := make([][2]float64, len(e.groups))
	for ui := range e.users {
		u := &e.users[ui]
		g := &e.groups[u.group]
		g.users++
		var ds, us stat
		for d, da := range u.days {
			u.sortedDays = append(u.sortedDays, d)
			for h := range 24 {
				if da.hours&(1<<h) != 0 {
					u.hourDays[h]++
					g.hourDays[h]++
				}
			}
			g.activeDays++
			ds.add(float64(da.distinct))
			us.add(float64(da.unexpl))
			k := pairKey(u.group, d)
			st := e.peerDay[k]
			st[0].add(float64(da.distinct))
			st[1].add(float64(da.unexpl))
			e.peerDay[k] = st
		}
		slices.Sort(u.sortedDays)
		u.meanD, u.sdD, u.meanU, u.sdU = ds.mean(), ds.sd(), us.mean(), us.sd()
		if u.accesses >= 20 {
			rates[u.group].add(float64(u.unexpl) / float64(u.accesses))
		}
		inCare[u.group][0] += float64(u.unexpl)
		inCare[u.group][1] += float64(u.inCare)
	}
	for gi := range e.groups {
		g := &e.groups[gi]
		g.rateMean, g.rate = rates[gi].mean(), rates[gi].sd()
		g.admin = g.rateMean > 0.3 && inCare[gi][0] > 0 && inCare[gi][1]/inCare[gi][0] > 0.8
	}
}

// usualHour tells whether hour h is one the user (or, with little
// history, their peer group) usually works, leaving out day d itself so
// that a night of browsing does not make the night usual.
func (e *Engine) usualHour(u int32, d int32, h int) bool {
	p := &e.users[u]
	if n := len(p.days) - 1; n >= 5 {
		// An hour next to a usual one is usual too: shifts start and end
		// a little early or late.
		for _, x := range []int{(h + 23) % 24, h, (h + 1) % 24} {
			seen := p.hourDays[x]
			if da := p.days[d]; da != nil && da.hours&(1<<x) != 0 {
				seen--
			}
			if seen >= max(1, int32(math.Ceil(0.1*float64(n)))) {
				return true
			}
		}
		return false
	}
	return e.groupUsualHour(p.group, h)
}

func (e *Engine) groupUsualHour(g int32, h int) bool {
	gp := &e.groups[g]
	return gp.activeDays > 0 && float64(gp.hourDays[h]) >= 0.05*float64(gp.activeDays)
}

// reactivated tells whether day d is a user's first activity after two
// weeks or more of silence that the log can see.
func (e *Engine) reactivated(u int32, d int32) bool {
	days := e.users[u].sortedDays
	i, _ := slices.BinarySearch(days, d)
	if i == 0 {
		return d-int32(e.minT/day) >= 14
	}
	return d-days[i-1] >= 14
}
