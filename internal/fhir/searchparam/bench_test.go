package searchparam

import "testing"

func BenchmarkExtract(b *testing.B) {
	r := R4()
	for _, bc := range []struct{ name, json string }{{"Patient", patientJSON}, {"Observation", obsJSON}} {
		res := decode(b, bc.json)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Extract(res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestEmbeddedTable(t *testing.T) {
	r := R4()
	if n := len(r.types); n < 140 {
		t.Errorf("%d resource types", n)
	}
	if n := len(r.byURL); n < 1300 {
		t.Errorf("%d parameters", n)
	}
}
