package passkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// softKey is a software platform authenticator holding one discoverable
// credential, for driving the ceremonies without a browser.
type softKey struct {
	t      testing.TB
	key    *ecdsa.PrivateKey
	id     []byte
	handle []byte
	count  uint32
	origin string
	noUV   bool // leave the user-verified flag off
}

func newSoftKey(t testing.TB, origin string) *softKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	return &softKey{t: t, key: key, id: id, origin: origin}
}

var b64 = base64.RawURLEncoding.EncodeToString

func (k *softKey) flags() byte {
	f := byte(protocol.FlagUserPresent)
	if !k.noUV {
		f |= byte(protocol.FlagUserVerified)
	}
	return f
}

func (k *softKey) clientData(typ string, challenge protocol.URLEncodedBase64) []byte {
	cd, _ := json.Marshal(map[string]any{"type": typ, "challenge": b64(challenge), "origin": k.origin, "crossOrigin": false})
	return cd
}

// create answers creation options as navigator.credentials.create would.
func (k *softKey) create(options []byte) []byte {
	k.t.Helper()
	var cc protocol.CredentialCreation
	if err := json.Unmarshal(options, &cc); err != nil {
		k.t.Fatalf("creation options: %v: %s", err, options)
	}
	o := cc.Response
	handle, ok := o.User.ID.(string)
	if !ok {
		k.t.Fatalf("user id %T", o.User.ID)
	}
	var err error
	if k.handle, err = base64.RawURLEncoding.DecodeString(handle); err != nil {
		k.t.Fatal(err)
	}
	cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         int64(webauthncose.P256),
		XCoord:        k.key.PublicKey.X.FillBytes(make([]byte, 32)),
		YCoord:        k.key.PublicKey.Y.FillBytes(make([]byte, 32)),
	})
	if err != nil {
		k.t.Fatal(err)
	}
	rp := sha256.Sum256([]byte(o.RelyingParty.ID))
	ad := append(rp[:], k.flags()|byte(protocol.FlagAttestedCredentialData))
	ad = binary.BigEndian.AppendUint32(ad, k.count)
	ad = append(ad, make([]byte, 16)...) // AAGUID
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(k.id)))
	ad = append(ad, k.id...)
	ad = append(ad, cose...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		k.t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{
		"id": b64(k.id), "rawId": b64(k.id), "type": "public-key", "authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON":    b64(k.clientData("webauthn.create", o.Challenge)),
			"attestationObject": b64(att),
			"transports":        []string{"internal"},
		},
		"clientExtensionResults": map[string]any{},
	})
	return out
}

// get answers request options as navigator.credentials.get would.
func (k *softKey) get(options []byte) []byte {
	k.t.Helper()
	var ca protocol.CredentialAssertion
	if err := json.Unmarshal(options, &ca); err != nil {
		k.t.Fatalf("request options: %v: %s", err, options)
	}
	o := ca.Response
	k.count++
	rp := sha256.Sum256([]byte(o.RelyingPartyID))
	ad := append(rp[:], k.flags())
	ad = binary.BigEndian.AppendUint32(ad, k.count)
	cd := k.clientData("webauthn.get", o.Challenge)
	h := sha256.Sum256(cd)
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, sha256Of(append(append([]byte{}, ad...), h[:]...)))
	if err != nil {
		k.t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{
		"id": b64(k.id), "rawId": b64(k.id), "type": "public-key", "authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON":    b64(cd),
			"authenticatorData": b64(ad),
			"signature":         b64(sig),
			"userHandle":        b64(k.handle),
		},
		"clientExtensionResults": map[string]any{},
	})
	return out
}

func sha256Of(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
