package synth

// Sensitive returns the identifying strings of the patients in bundle b: family and given
// names (official and maiden), identifier values (MRN, SSN), birth dates, address lines, phone
// numbers and email addresses. Each appears once, in order of first appearance. b may be a
// bundle made by this package or one decoded from JSON with encoding/json.
//
// Leak tests scan stored bytes for these strings: none of them may appear in plaintext. Short
// values (a family name such as "Kim" is three bytes) can occur by chance in megabytes of
// random ciphertext, so a scanner of encrypted files may skip values shorter than about eight
// bytes; every patient still has several long values (MRN, SSN, birth date, address line,
// phone) that catch a leak of the record.
func Sensitive(b map[string]any) []string {
	var out []string
	seen := map[string]bool{}
	add := func(v any) {
		if s, ok := v.(string); ok && s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		entry, _ := e.(map[string]any)
		r, _ := entry["resource"].(map[string]any)
		if r["resourceType"] != "Patient" {
			continue
		}
		for _, n := range list(r["name"]) {
			add(n["family"])
			for _, g := range anys(n["given"]) {
				add(g)
			}
		}
		for _, id := range list(r["identifier"]) {
			add(id["value"])
		}
		add(r["birthDate"])
		for _, a := range list(r["address"]) {
			for _, l := range anys(a["line"]) {
				add(l)
			}
		}
		for _, t := range list(r["telecom"]) {
			add(t["value"])
		}
	}
	return out
}

func list(v any) []map[string]any {
	vs, _ := v.([]any)
	out := make([]map[string]any, 0, len(vs))
	for _, x := range vs {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func anys(v any) []any {
	vs, _ := v.([]any)
	return vs
}
