package fhirapi

import (
	"slices"
	"testing"

	"github.com/phivault/phivault/internal/records"
)

// TestLabelMemo: the memo answers what labels finds in the body at hand:
// the same version with another body (shaped by _elements, or a write's
// body not yet stored) is scanned anew, not answered with the labels of
// the body seen first.
func TestLabelMemo(t *testing.T) {
	var l labelMemo
	restricted := records.Entry{Type: "Observation", ID: "o1", VID: 2,
		Body: []byte(`{"resourceType":"Observation","meta":{"security":[{"code":"R"}]},"category":[{"coding":[{"code":"laboratory"}]}]}`)}
	shaped := restricted
	shaped.Body = []byte(`{"resourceType":"Observation","id":"o1"}`)
	for range 2 {
		sec, cat := l.of(restricted)
		if !slices.Equal(sec, []string{"R"}) || !slices.Equal(cat, []string{"laboratory"}) {
			t.Fatalf("restricted body: %v %v", sec, cat)
		}
		if sec, cat := l.of(shaped); sec != nil || cat != nil {
			t.Fatalf("the same version with a body without labels: %v %v", sec, cat)
		}
	}
}
