package synth

// Code systems and the clinical vocabulary the generator draws from. Codes are real SNOMED CT,
// LOINC, RxNorm and HL7 codes with their usual displays.
const (
	snomed            = "http://snomed.info/sct"
	loinc             = "http://loinc.org"
	rxnorm            = "http://www.nlm.nih.gov/research/umls/rxnorm"
	ucum              = "http://unitsofmeasure.org"
	bcp47             = "urn:ietf:bcp:47"
	actCode           = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	roleCode          = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
	obsCategory       = "http://terminology.hl7.org/CodeSystem/observation-category"
	obsInterpretation = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	condClinical      = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	condVerification  = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
	condCategory      = "http://terminology.hl7.org/CodeSystem/condition-category"
	confidentiality   = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	maritalStatus     = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
	identifierType    = "http://terminology.hl7.org/CodeSystem/v2-0203"
	participationType = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	dischargeDisp     = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
	orgType           = "http://terminology.hl7.org/CodeSystem/organization-type"
	practRole         = "http://terminology.hl7.org/CodeSystem/practitioner-role"
	degreeLicense     = "http://terminology.hl7.org/CodeSystem/v2-0360"

	// MRNSystem is the identifier system of the generated medical record numbers.
	MRNSystem = "http://hospital.example.org/mrn"
	// SSNSystem is the identifier system of the generated (never-issued, 999-area) SSNs.
	SSNSystem = "http://hl7.org/fhir/sid/us-ssn"
	npiSystem = "http://hl7.org/fhir/sid/us-npi"
)

// med is an RxNorm clinical drug with a typical dosage: dose units of form, perDay times a day.
type med struct {
	code, display string
	instruction   string
	dose          int
	form          string // tablet, capsule or puff
	perDay        int
	asNeeded      bool
}

var (
	lisinopril   = med{"314076", "lisinopril 10 MG Oral Tablet", "Take 1 tablet by mouth once daily", 1, "tablet", 1, false}
	amlodipine   = med{"197361", "amlodipine 5 MG Oral Tablet", "Take 1 tablet by mouth once daily", 1, "tablet", 1, false}
	hctz         = med{"310798", "hydrochlorothiazide 25 MG Oral Tablet", "Take 1 tablet by mouth every morning", 1, "tablet", 1, false}
	metformin    = med{"860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet", "Take 1 tablet by mouth with the evening meal", 1, "tablet", 1, false}
	simvastatin  = med{"316672", "simvastatin 10 MG Oral Tablet", "Take 1 tablet by mouth at bedtime", 1, "tablet", 1, false}
	atorvastatin = med{"259255", "atorvastatin 80 MG Oral Tablet", "Take 1 tablet by mouth once daily", 1, "tablet", 1, false}
	fluticasone  = med{"895994", "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler", "Inhale 2 puffs twice daily; rinse mouth after use", 2, "puff", 2, false}
	albuterol    = med{"745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", "Inhale 2 puffs every 4 to 6 hours as needed for wheezing", 2, "puff", 4, true}
	sertraline   = med{"312938", "sertraline 100 MG Oral Tablet", "Take 1 tablet by mouth once daily", 1, "tablet", 1, false}
	levothyrox   = med{"966222", "levothyroxine sodium 0.075 MG Oral Tablet", "Take 1 tablet by mouth every morning on an empty stomach", 1, "tablet", 1, false}
	warfarin     = med{"855332", "warfarin sodium 5 MG Oral Tablet", "Take 1 tablet by mouth once daily or as directed by the anticoagulation clinic", 1, "tablet", 1, false}
	metoprolol   = med{"866412", "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet", "Take 1 tablet by mouth once daily", 1, "tablet", 1, false}
	aspirin      = med{"243670", "aspirin 81 MG Oral Tablet", "Take 1 tablet by mouth once daily", 1, "tablet", 1, false}
	clopidogrel  = med{"309362", "clopidogrel 75 MG Oral Tablet", "Take 1 tablet by mouth once daily", 1, "tablet", 1, false}
	naproxen     = med{"849574", "naproxen sodium 220 MG Oral Tablet", "Take 1 tablet by mouth every 12 hours as needed for pain", 1, "tablet", 2, true}
	acetaminoph  = med{"313782", "acetaminophen 325 MG Oral Tablet", "Take 2 tablets by mouth every 6 hours as needed for fever or pain", 2, "tablet", 4, true}
	ibuprofen    = med{"310965", "ibuprofen 200 MG Oral Tablet", "Take 2 tablets by mouth every 6 hours as needed for pain", 2, "tablet", 4, true}
	amoxicillin  = med{"308182", "amoxicillin 250 MG Oral Capsule", "Take 1 capsule by mouth 3 times daily for 10 days", 1, "capsule", 3, false}
	penicillinV  = med{"834060", "penicillin V potassium 250 MG Oral Tablet", "Take 1 tablet by mouth 4 times daily for 10 days", 1, "tablet", 4, false}
)

// chronic is a long-term condition with its age-banded prevalence (probability of having it by
// the reference date), the drugs that treat it, the specialty that co-manages it and the lab
// tests that follow it.
type chronic struct {
	code, display string
	bands         []band // ascending minAge; the last band at or below the age applies
	femaleFactor  float64
	meds          []med
	specialist    specialty
	labs          []lab
}

type band struct {
	minAge int
	p      float64
}

var (
	hypertension = &chronic{"38341003", "Hypertensive disorder, systemic arterial", []band{{18, .08}, {40, .30}, {60, .55}}, 1, []med{lisinopril, amlodipine, hctz}, cardiology, []lab{creatinine, potassium, sodium}}
	diabetes2    = &chronic{"44054006", "Diabetes mellitus type 2", []band{{18, .03}, {40, .11}, {60, .20}}, 1, []med{metformin}, endocrinology, []lab{hba1c, glucose, creatinine}}
	hyperlipid   = &chronic{"55822004", "Hyperlipidemia", []band{{20, .05}, {40, .22}, {60, .38}}, 1, []med{simvastatin, atorvastatin}, noSpecialty, lipidPanel}
	asthma       = &chronic{"195967001", "Asthma", []band{{2, .08}}, 1, []med{albuterol, fluticasone}, noSpecialty, nil}
	copd         = &chronic{"13645005", "Chronic obstructive lung disease", []band{{40, .04}, {60, .09}}, 1, []med{albuterol}, noSpecialty, nil}
	depression   = &chronic{"35489007", "Depressive disorder", []band{{12, .08}}, 1.6, []med{sertraline}, noSpecialty, nil}
	hypothyroid  = &chronic{"40930008", "Hypothyroidism", []band{{18, .03}, {50, .06}}, 3, []med{levothyrox}, endocrinology, nil}
	afib         = &chronic{"49436004", "Atrial fibrillation", []band{{55, .04}, {70, .10}}, 0.8, []med{metoprolol, warfarin}, cardiology, []lab{hemoglobin}}
	coronary     = &chronic{"53741008", "Coronary arteriosclerosis", []band{{45, .04}, {65, .12}}, 0.6, []med{aspirin, clopidogrel}, cardiology, []lab{cholesterol, ldl}}
	osteoarthr   = &chronic{"239873007", "Osteoarthritis of knee", []band{{45, .06}, {65, .15}}, 1.4, []med{naproxen}, noSpecialty, nil}
	// obesity is diagnosed from the patient's BMI, not drawn by prevalence.
	obesity = &chronic{"414916001", "Obesity", nil, 1, nil, noSpecialty, []lab{glucose}}

	chronics = []*chronic{hypertension, diabetes2, hyperlipid, asthma, copd, depression, hypothyroid, afib, coronary, osteoarthr}
)

// acute is a short illness or injury that brings a patient in, resolving after some days.
type acute struct {
	code, display    string
	minAge, maxAge   int
	class            encClass // the kind of encounter it presents at
	fever            bool
	meds             []med
	minDays, maxDays int // time to resolution
	sinceYear        int // first year it can occur (0: any)
}

var acutes = []acute{
	{"195662009", "Acute viral pharyngitis", 2, 120, amb, true, []med{acetaminoph}, 5, 10, 0},
	{"43878008", "Streptococcal sore throat", 3, 60, amb, true, []med{penicillinV}, 7, 12, 0},
	{"10509002", "Acute bronchitis", 5, 120, amb, false, []med{acetaminoph}, 10, 21, 0},
	{"444814009", "Viral sinusitis", 5, 120, amb, false, nil, 7, 14, 0},
	{"65363002", "Otitis media", 0, 10, amb, true, []med{amoxicillin}, 7, 14, 0},
	{"68566005", "Urinary tract infectious disease", 16, 120, amb, true, nil, 5, 10, 0},
	{"6142004", "Influenza", 0, 120, amb, true, []med{acetaminoph}, 7, 14, 0},
	{"840539006", "Disease caused by severe acute respiratory syndrome coronavirus 2", 0, 120, amb, true, []med{acetaminoph}, 10, 21, 2020},
	{"44465007", "Sprain of ankle", 8, 80, emer, false, []med{ibuprofen}, 14, 42, 0},
	{"62106007", "Concussion with no loss of consciousness", 5, 80, emer, false, []med{acetaminoph}, 14, 30, 0},
	{"65966004", "Fracture of forearm", 4, 90, emer, false, []med{ibuprofen}, 42, 70, 0},
	{"233604007", "Pneumonia", 0, 120, imp, true, []med{amoxicillin}, 14, 28, 0},
	{"22298006", "Myocardial infarction", 45, 120, imp, false, []med{aspirin, clopidogrel}, 30, 60, 0},
}

// lab is a LOINC laboratory test with its UCUM unit and adult reference range.
type lab struct {
	code, display string
	unit, ucum    string
	prec          int
	low, high     float64 // reference range; zero means unbounded on that side
}

var (
	glucose       = lab{"2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", "mg/dL", 0, 70, 99}
	hba1c         = lab{"4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "%", 1, 4, 5.6}
	cholesterol   = lab{"2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 0, 0, 199}
	hdl           = lab{"2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 0, 40, 0}
	ldl           = lab{"18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay", "mg/dL", "mg/dL", 0, 0, 129}
	triglycerides = lab{"2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 0, 0, 149}
	creatinine    = lab{"2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 2, 0.6, 1.3}
	potassium     = lab{"2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", "mmol/L", 1, 3.5, 5.1}
	sodium        = lab{"2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", "mmol/L", 0, 136, 145}
	hemoglobin    = lab{"718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "g/dL", 1, 12, 17.5}

	lipidPanel = []lab{cholesterol, hdl, ldl, triglycerides}
	acuteLabs  = []lab{hemoglobin, glucose, sodium, potassium, creatinine}
)
