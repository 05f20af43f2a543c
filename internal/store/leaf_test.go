package store

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// typicalLeaf is an AuditEvent leaf as the audit log writes one for a read.
const typicalLeaf = `{"action":"R","agent":[{"network":{"address":"10.20.30.40","type":"2"},"purposeOfUse":[{"coding":[{"code":"TREAT","system":"http://terminology.hl7.org/CodeSystem/v3-ActReason"}]}],"requestor":true,"role":[{"coding":[{"code":"nurse","system":"urn:phivault:role"}]}],"type":{"coding":[{"code":"humanuser","system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type"}]},"who":{"identifier":{"system":"urn:phivault:user","value":"a.jones"}}}],"entity":[{"role":{"code":"1","system":"http://terminology.hl7.org/CodeSystem/object-role"},"type":{"code":"1","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},"what":{"reference":"Patient/5d2f7a31-0c4e-4a8e-9a51-7c1f0b2d9e44"}},{"type":{"code":"2","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},"what":{"reference":"MedicationRequest/8e1b2c3d-4f5a-4b6c-8d7e-9f0a1b2c3d4e/_history/3"}}],"extension":[{"url":"urn:phivault:decision","valueCode":"permit"},{"url":"urn:phivault:policy","valueString":"care-team-read"},{"url":"urn:phivault:user-agent","valueString":"Mozilla/5.0 (X11; Linux x86_64)"},{"url":"urn:phivault:auth-method","valueString":"password+totp"}],"outcome":"0","recorded":"2026-11-02T08:14:59.120334Z","resourceType":"AuditEvent","source":{"observer":{"display":"phivault"},"type":[{"code":"4","display":"Application Server","system":"http://terminology.hl7.org/CodeSystem/security-source-type"}]},"subtype":[{"code":"read","system":"http://hl7.org/fhir/restful-interaction"}],"type":{"code":"rest","display":"RESTful Operation","system":"http://terminology.hl7.org/CodeSystem/audit-event-type"}}`

// TestLeafRoundTrip: every leaf reads back exactly as appended, whatever
// its bytes, including leaves that look like the compressed form.
func TestLeafRoundTrip(t *testing.T) {
	rnd := make([]byte, 5000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	leaves := map[string][]byte{
		"empty":      {},
		"short":      []byte("x"),
		"typical":    []byte(typicalLeaf),
		"random":     rnd,
		"tag-only":   leafTag[:],
		"tag-byte":   {0xff},
		"tag-prefix": append(leafTag[:], "not a block"...),
		"other-tag":  append([]byte{0xff, 2}, []byte(typicalLeaf)...),
		"an-encoded": PackLeaf([]byte(typicalLeaf)), // a leaf whose bytes are a stored row
		"large":      []byte(strings.Repeat(typicalLeaf, 400)),
	}
	for name, l := range leaves {
		got := UnpackLeaf(PackLeaf(l))
		if !bytes.Equal(got, l) {
			t.Errorf("%s: read back %d bytes that differ from the %d appended", name, len(got), len(l))
		}
		if got == nil {
			t.Errorf("%s: read back nil", name)
		}
	}
}

// TestLeafCompresses: a typical leaf is stored at a fraction of its size;
// one that would not shrink is stored as it is.
func TestLeafCompresses(t *testing.T) {
	z := PackLeaf([]byte(typicalLeaf))
	if !bytes.HasPrefix(z, leafTag[:]) || len(z)*5 > len(typicalLeaf) {
		t.Errorf("typical %d-byte leaf stored in %d bytes, want it encoded, under a fifth", len(typicalLeaf), len(z))
	}
	t.Logf("typical leaf: %d bytes stored in %d", len(typicalLeaf), len(z))
	if got := PackLeaf([]byte("x")); string(got) != "x" {
		t.Errorf("a 1-byte leaf stored as %x, want it as it is", got)
	}
}

// TestUnpackOldAndAlteredRows: rows written before compression read back
// unchanged, and a frame altered in the database reads back as stored
// (so that it fails its hash check) rather than as an error or a panic,
// and so does a row naming a dictionary this version does not know.
func TestUnpackOldAndAlteredRows(t *testing.T) {
	if got := UnpackLeaf([]byte(typicalLeaf)); string(got) != typicalLeaf {
		t.Error("a plain JSON row did not read back unchanged")
	}
	z := PackLeaf([]byte(typicalLeaf))
	for _, bad := range [][]byte{
		z[:len(z)-5],                      // truncated
		append([]byte{0xff, 2}, z[2:]...), // another dictionary
		append(bytes.Clone(z[:2]), 0xf0, 0xff, 0xff, 0xff, 0x0f), // claims 4 GB
		{0xff},
	} {
		if got := UnpackLeaf(bad); !bytes.Equal(got, bad) {
			t.Errorf("row %x...: read back %d bytes, want the %d stored", bad[:min(8, len(bad))], len(got), len(bad))
		}
	}
	for _, i := range []int{2, len(z) / 2, len(z) - 1} {
		bad := bytes.Clone(z)
		bad[i] ^= 0x10
		if got := UnpackLeaf(bad); string(got) == typicalLeaf {
			t.Errorf("byte %d altered: still read back as the original leaf", i)
		}
	}
}

// FuzzLeaf: PackLeaf and UnpackLeaf are inverse for any leaf, and
// UnpackLeaf takes any stored bytes without panicking.
func FuzzLeaf(f *testing.F) {
	f.Add([]byte(typicalLeaf))
	f.Add(PackLeaf([]byte(typicalLeaf)))
	f.Add([]byte{0xff, 1, 0x80, 0x80, 0x80, 0x80, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		if got := UnpackLeaf(PackLeaf(b)); !bytes.Equal(got, b) {
			t.Fatalf("round trip of %d bytes changed them", len(b))
		}
		UnpackLeaf(b)
	})
}

// BenchmarkPackLeaf and BenchmarkUnpackLeaf: the cost per typical leaf
// of the stored form, paid by the writer and by every reader of the log.
func BenchmarkPackLeaf(b *testing.B) {
	l := []byte(typicalLeaf)
	b.SetBytes(int64(len(l)))
	for b.Loop() {
		PackLeaf(l)
	}
}

func BenchmarkUnpackLeaf(b *testing.B) {
	z := PackLeaf([]byte(typicalLeaf))
	b.SetBytes(int64(len(typicalLeaf)))
	for b.Loop() {
		UnpackLeaf(z)
	}
}
