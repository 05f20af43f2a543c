//go:build pkcs11

package pkcs11

import (
	"errors"
	"fmt"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/phivault/phivault/internal/keys"
)

// PKCS#11 initialises a library once per process (C_Initialize), and
// C_Finalize ends every session of every user of it. Providers of the same
// module therefore share one initialised library, finalised when the last
// of them closes. This table is the one piece of process state the
// standard forces on us.
var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

type module struct {
	path string
	ctx  *p11.Ctx
	refs int
}

// loadModule loads and initialises the library at path, or shares the
// copy already loaded.
func loadModule(path string) (*module, error) {
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[path]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := p11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("%w %s: the library cannot be opened (is the path right and the HSM client installed?)", ErrModule, path)
	}
	if err := ctx.Initialize(); err != nil && !is(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("%w %s: C_Initialize: %w (the module cannot reach its tokens: is the HSM connected? For SoftHSM2: do SOFTHSM2_CONF and its token directory exist?)", ErrModule, path, err)
	}
	m := &module{path: path, ctx: ctx, refs: 1}
	modules.m[path] = m
	return m, nil
}

// release drops one reference; the last one finalises the library.
func (m *module) release() {
	modules.Lock()
	defer modules.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(modules.m, m.path)
	m.ctx.Finalize()
	m.ctx.Destroy()
}

// findSlot returns the slot holding the one token labelled label.
func (m *module) findSlot(label string) (uint, error) {
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		return 0, classify("list slots", err)
	}
	var found []uint
	for _, s := range slots {
		ti, err := m.ctx.GetTokenInfo(s)
		if err == nil && ti.Label == label {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("%w: no token labelled %q among %d present in %s", ErrNoToken, label, len(slots), m.path)
	case 1:
		return found[0], nil
	}
	return 0, fmt.Errorf("%w: %d tokens are labelled %q; labels must be unique", ErrNoToken, len(found), label)
}

func is(err error, rv uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == rv
}

// classify turns a PKCS#11 error into one of the package's errors, keeping
// the return value's name in the message.
func classify(op string, err error) error {
	var e p11.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("pkcs11: %s: %w", op, err)
	}
	var kind error
	switch uint(e) {
	case p11.CKR_PIN_INCORRECT, p11.CKR_PIN_LEN_RANGE, p11.CKR_PIN_INVALID:
		kind = ErrWrongPIN
	case p11.CKR_PIN_LOCKED:
		kind = ErrPINLocked
	case p11.CKR_TOKEN_NOT_PRESENT, p11.CKR_DEVICE_REMOVED, p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED,
		p11.CKR_TOKEN_NOT_RECOGNIZED, p11.CKR_SLOT_ID_INVALID, p11.CKR_DEVICE_ERROR, p11.CKR_USER_NOT_LOGGED_IN,
		p11.CKR_CRYPTOKI_NOT_INITIALIZED, p11.CKR_OBJECT_HANDLE_INVALID, p11.CKR_KEY_HANDLE_INVALID:
		kind = ErrTokenGone
	case p11.CKR_ENCRYPTED_DATA_INVALID, p11.CKR_ENCRYPTED_DATA_LEN_RANGE:
		return fmt.Errorf("%w: wrapped data key does not authenticate (%s: %w)", keys.ErrCorrupt, op, err)
	default:
		return fmt.Errorf("pkcs11: %s: %w", op, err)
	}
	return fmt.Errorf("%w (%s: %w)", kind, op, err)
}
