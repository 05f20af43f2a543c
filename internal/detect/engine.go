package detect

import (
	"math"
	"time"
)

// Engine runs the detector over one batch of events in two passes: the
// first learns habits (hours, volumes, sources, peer groups), the second
// applies the rules against them. Its memory grows with users, user-days,
// user-patient pairs and alerts, not with the number of events.
type Engine struct {
	dir      *Directory
	users    []userProf
	groups   []groupProf
	groupIdx map[string]int32
	pairs    []pairAgg
	pairIdx  map[uint64]int32
	peerDay  map[uint64][2]stat
	ipFirst  map[uint64]int64 // (user, source) -> first use
	ipUsers  map[int32]int32
	ipNet    []int32 // source -> its /16 network
	netUsers []int32 // network -> distinct users
	minT     int64
	maxT     int64

	denials, failures, bulk, exports map[uint64]int32
	ipBucketUsers                    map[[3]int32]struct{}
	stuffing                         map[[2]int32][]stuffHit
	alerts                           []*Alert
	patientAlerts                    map[uint64]*Alert
	userAlerts                       map[[3]int32]*Alert
	reviews                          int
	accesses, direct, roleExplained  int
}

type stuffHit struct {
	user int32
	t    int64
}

// Alert is a de-duplicated finding: one per user and patient, or one per
// user, rule and day for findings about behaviour.
type Alert struct {
	ID        string    `json:"id"`
	CaseID    string    `json:"case_id"`
	UserID    string    `json:"user_id"`
	PatientID string    `json:"patient_id"`
	Rules     []string  `json:"rules"`
	Score     float64   `json:"score"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Events    int       `json:"events"`
	Reasons   []string  `json:"reasons"`
	Severity  string    `json:"severity"`
	mask      uint32
	user      int32
	first     int64
	last      int64
}

// NewEngine returns an engine over the directory's facts.
func NewEngine(dir *Directory) *Engine {
	return &Engine{dir: dir, groupIdx: map[string]int32{}, pairIdx: map[uint64]int32{}, peerDay: map[uint64][2]stat{},
		ipFirst: map[uint64]int64{}, ipUsers: map[int32]int32{}, minT: math.MaxInt64,
		denials: map[uint64]int32{}, failures: map[uint64]int32{}, bulk: map[uint64]int32{}, exports: map[uint64]int32{},
		ipBucketUsers: map[[3]int32]struct{}{}, stuffing: map[[2]int32][]stuffHit{},
		patientAlerts: map[uint64]*Alert{}, userAlerts: map[[3]int32]*Alert{}}
}

// Source yields the events of the batch, in any order; it is called
// once per pass and must yield the same events each time.
type Source func(fn func(*Event)) error

// Run runs both passes over src and returns the alerts, highest score first.
func (e *Engine) Run(src Source, ips func() []string) ([]*Alert, error) {
	if err := src(e.observe); err != nil {
		return nil, err
	}
	e.networks(ips())
	e.learn()
	if err := src(e.check); err != nil {
		return nil, err
	}
	e.finish()
	return e.alerts, nil
}
