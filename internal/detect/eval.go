package detect

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// Label is one known incident (ground truth from a simulation or a
// review). Eval reads them; the detector never does.
type Label struct {
	User, Patient, Scenario string
	Start, End              int64
}

// Report is the outcome of comparing a run's output with labels.
type Report struct {
	Alerts             int                `json:"alerts"`
	Precision          float64            `json:"precision"`
	Recall             float64            `json:"incident_recall"`
	RecallByScenario   map[string]float64 `json:"recall_by_scenario"`
	Missed             []string           `json:"missed,omitempty"`
	AUC                float64            `json:"auc"`
	PrecisionAt100     float64            `json:"precision_at_100"`
	Cases, FPCases     int                `json:"-"`
	FPCasesPer1000UDay float64            `json:"fp_cases_per_1000_users_per_day"`
	ExplainedLegit     float64            `json:"explained_legitimate"`
	Users              int                `json:"users"`
	Days               float64            `json:"days"`
}

const slack = 3600

func (l *Label) matches(user, patient string, first, last int64) bool {
	return l.User == user && (l.Patient == "" || patient == "" || l.Patient == patient) &&
		first <= l.End+slack && last >= l.Start-slack
}

// ReadLabels reads user_id,patient_id,scenario,start,end.
func ReadLabels(r io.Reader) ([]Label, error) {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, err
	}
	var out []Label
	for i, rec := range recs {
		if i == 0 || len(rec) < 5 {
			continue
		}
		s, err1 := time.Parse(time.RFC3339, rec[3])
		e, err2 := time.Parse(time.RFC3339, rec[4])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("labels line %d: bad time", i+1)
		}
		out = append(out, Label{rec[0], rec[1], rec[2], s.Unix(), e.Unix()})
	}
	return out, nil
}

// Eval compares the output of RunFiles in dir with labels.
func Eval(dir string, labels []Label) (*Report, error) {
	var sum Summary
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		return nil, err
	}
	alerts, err := ReadAlerts(filepath.Join(dir, "alerts.jsonl"))
	if err != nil {
		return nil, err
	}
	byUser := map[string][]int{}
	for i, l := range labels {
		byUser[l.User] = append(byUser[l.User], i)
	}
	rep := &Report{Alerts: len(alerts), Users: sum.Users, Days: sum.Days, RecallByScenario: map[string]float64{}}
	found := make([]bool, len(labels))
	caseTP := map[string]bool{}
	tp := 0
	for i, a := range alerts {
		hit := false
		for _, li := range byUser[a.UserID] {
			if labels[li].matches(a.UserID, a.PatientID, a.FirstSeen.Unix(), a.LastSeen.Unix()) {
				hit, found[li] = true, true
			}
		}
		if hit {
			tp++
			if i < 100 {
				rep.PrecisionAt100++
			}
		}
		caseTP[a.CaseID] = caseTP[a.CaseID] || hit
	}
	if len(alerts) > 0 {
		rep.Precision = float64(tp) / float64(len(alerts))
		rep.PrecisionAt100 /= float64(min(100, len(alerts)))
	}
	for _, ok := range caseTP {
		rep.Cases++
		if !ok {
			rep.FPCases++
		}
	}
	if sum.Users > 0 && sum.Days > 0 {
		rep.FPCasesPer1000UDay = float64(rep.FPCases) / (float64(sum.Users) / 1000) / sum.Days
	}
	n, hits := map[string]int{}, map[string]int{}
	nfound := 0
	for i, l := range labels {
		n[l.Scenario]++
		if found[i] {
			hits[l.Scenario]++
			nfound++
		} else {
			rep.Missed = append(rep.Missed, l.Scenario+" "+l.User+" "+l.Patient)
		}
	}
	for s := range n {
		rep.RecallByScenario[s] = float64(hits[s]) / float64(n[s])
	}
	if len(labels) > 0 {
		rep.Recall = float64(nfound) / float64(len(labels))
	}
	return rep, evalPairs(filepath.Join(dir, "pairs.csv"), labels, byUser, rep)
}

// ReadAlerts reads alerts.jsonl, highest score first.
func ReadAlerts(path string) ([]Alert, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Alert
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var a Alert
		if err := dec.Decode(&a); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Score > out[j].Score })
	return out, nil
}

// evalPairs computes the AUC over user-patient pairs and the share of
// legitimate accesses explained.
func evalPairs(path string, labels []Label, byUser map[string][]int, rep *Report) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	cr := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	cr.ReuseRecord = true
	type scored struct {
		s   float64
		pos bool
	}
	var ps []scored
	var legitEv, legitExp int
	for i := 0; ; i++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		if i == 0 {
			continue
		}
		first, _ := time.Parse(time.RFC3339, rec[2])
		last, _ := time.Parse(time.RFC3339, rec[3])
		ev, _ := strconv.Atoi(rec[4])
		ex, _ := strconv.Atoi(rec[5])
		s, _ := strconv.ParseFloat(rec[6], 64)
		pos := false
		for _, li := range byUser[rec[0]] {
			l := &labels[li]
			if l.Patient != "" && l.Patient == rec[1] && l.matches(rec[0], rec[1], first.Unix(), last.Unix()) {
				pos = true
			}
			if l.Patient == "" && first.Unix() >= l.Start-60 && first.Unix() <= l.End+60 {
				pos = true
			}
		}
		ps = append(ps, scored{s, pos})
		if !pos {
			legitEv += ev
			legitExp += ex
		}
	}
	if legitEv > 0 {
		rep.ExplainedLegit = float64(legitExp) / float64(legitEv)
	}
	// AUC by the rank-sum (Mann-Whitney) with ties averaged.
	sort.Slice(ps, func(i, j int) bool { return ps[i].s < ps[j].s })
	var npos, nneg, rankSum float64
	for i := 0; i < len(ps); {
		j := i
		for j < len(ps) && ps[j].s == ps[i].s {
			j++
		}
		avg := float64(i+j+1) / 2
		for k := i; k < j; k++ {
			if ps[k].pos {
				npos++
				rankSum += avg
			} else {
				nneg++
			}
		}
		i = j
	}
	if npos > 0 && nneg > 0 {
		rep.AUC = (rankSum - npos*(npos+1)/2) / (npos * nneg)
	}
	return nil
}
