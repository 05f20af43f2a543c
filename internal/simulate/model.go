// Package simulate writes a synthetic hospital for testing privacy and
// threat monitoring: a FHIR directory (staff, patients and the care
// relationships between them), an access log in the phivault import CSV
// format, and the ground truth of the incidents it injected.
//
// It promises: the same Config gives byte-identical output; memory is
// bounded by the population and the encounters, never by the number of
// access events, which are generated and written one day at a time.
package simulate

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Config is the size and seed of a simulated hospital.
type Config struct {
	Seed     uint64
	Users    int
	Patients int
	Days     int
	// IncidentRate is the number of incidents of each scenario per 1,000
	// user-days (at least two of each are always injected).
	IncidentRate float64
	// Start is the first simulated day (UTC midnight).
	Start time.Time
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var msg string
	if c.Users < 50 {
		msg += "; users must be at least 50"
	}
	if c.Patients < 500 {
		msg += "; patients must be at least 500"
	}
	if c.Days < 3 || c.Days > 366 {
		msg += "; days must be between 3 and 366"
	}
	if c.IncidentRate < 0 {
		msg += "; incident rate must not be negative"
	}
	if msg != "" {
		return fmt.Errorf("simulate: %s", msg[2:])
	}
	return nil
}

// Shifts: day 07-15, evening 15-23, night 23-07.
const (
	shiftDay = iota
	shiftEvening
	shiftNight
)

var shiftStart = [3]int{7, 15, 23}

type dept struct {
	name       string
	clinical   bool
	inpatient  float64 // share of encounters that are admissions
	encPerUser float64 // encounters per staff member per day
}

// departments: the weights of the mix vary with the seed.
var departments = []dept{
	{"Emergency", true, 0, 0.9},
	{"Internal Medicine", true, 0.5, 0.5},
	{"Cardiology", true, 0.4, 0.5},
	{"Oncology", true, 0.3, 0.5},
	{"Surgery", true, 0.6, 0.4},
	{"Orthopedics", true, 0.4, 0.5},
	{"Pediatrics", true, 0.3, 0.6},
	{"Obstetrics", true, 0.5, 0.4},
	{"Neurology", true, 0.3, 0.5},
	{"Psychiatry", true, 0.3, 0.4},
	{"Intensive Care", true, 1, 0.2},
	{"Radiology", true, 0, 0},
	{"Billing", false, 0, 0},
	{"Health Information", false, 0, 0},
}

const (
	deptED        = 0
	deptICU       = 10
	deptRadiology = 11
	deptBilling   = 12
	deptHIM       = 13
)

type user struct {
	id, given, family, birth string
	addr                     address
	dept                     int
	role                     string
	shift                    int
	ws                       []int // workstation numbers in the department
	dormant                  bool  // account exists but is not used
	vacFrom, vacTo           int   // days off (vacFrom == vacTo: none)
	patient                  int   // own Patient index, or -1
	family1                  []int // family members among the patients
	off                      int   // weekly pattern offset
}

type address struct {
	num, street, postcode int
}

func (a address) line() string { return fmt.Sprintf("%d %s", a.num, streetName(a.street)) }
func (a address) code() string { return fmt.Sprintf("%05d", 10000+a.postcode*7) }
func streetName(s int) string {
	return streets[s%len(streets)] + " " + suffixes[(s/len(streets))%len(suffixes)]
}
func (u *user) ip(ws int) string            { return fmt.Sprintf("10.%d.%d.%d", 20+u.dept, ws/200, 10+ws%200) }
func wsName(d, ws int) string               { return fmt.Sprintf("ws-%02d-%03d", d, ws) }
func deptIP(d, ws int) string               { return fmt.Sprintf("10.%d.%d.%d", 20+d, ws/200, 10+ws%200) }
func pickS(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

type patient struct {
	id, given, family, birth string
	addr                     address
	security                 string // "", "R" or "V"
	deceased                 bool
	employee                 int  // user index, or -1
	byIdentifier             bool // linked to the employee by identifier (else by name and birth date)
	encs                     []int32
}

type encounter struct {
	id           int
	patient      int
	dept         int
	start, end   time.Time
	participants []int
	careTeam     []int
	order        int // performing department of a ServiceRequest, or -1
	orderAt      time.Time
	medOrder     bool
	appt         time.Time // follow-up appointment (zero: none)
}

var givens = []string{"James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Maria", "Wei", "Fang", "Arjun", "Priya", "Omar", "Fatima", "Minjun", "Seoyeon", "Olena", "Taras", "Camille", "Julien", "Ngozi", "Kwame", "Lucia", "Diego", "Hannah", "Ethan", "Grace", "Noah", "Ava", "Liam", "Mia", "Lucas", "Zoe", "Mateo", "Aisha", "Yusuf", "Ingrid", "Sven"}
var families = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Wang", "Zhang", "Patel", "Sharma", "Kim", "Park", "Okafor", "Mensah", "Haddad", "Khalil", "Shevchenko", "Melnyk", "Dubois", "Moreau", "Fischer", "Weber", "Novak", "Horvat", "Rossi", "Russo", "Silva", "Santos", "Cohen", "Levi", "Murphy", "Kelly", "Sullivan", "Walsh", "Larsen", "Hansen", "Berg", "Lindqvist", "Tanaka", "Suzuki", "Sato", "Ito", "Yamamoto", "Petrov", "Ivanova", "Kowalski", "Nowak", "Papadopoulos", "Costa", "Ferreira", "Mendes", "Reyes", "Cruz", "Ortiz", "Gomez", "Diaz"}
var streets = []string{"Oak", "Maple", "Cedar", "Pine", "Elm", "Birch", "Willow", "Ash", "Spruce", "Chestnut", "Walnut", "Hickory", "Poplar", "Sycamore", "Magnolia", "Laurel", "Juniper", "Hawthorn", "Linden", "Alder", "Mill", "Church", "Park", "Lake", "Hill", "River", "Bridge", "Station", "Market", "School", "Garden", "Meadow", "Forest", "Spring", "Sunset", "Highland", "Valley", "Orchard", "Harbor", "Prospect"}
var suffixes = []string{"Street", "Avenue", "Road", "Lane", "Drive", "Court", "Place", "Way", "Terrace", "Boulevard", "Close", "Row", "Crescent", "Parkway", "Square"}
