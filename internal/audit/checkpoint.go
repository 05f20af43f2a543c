package audit

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is the body of a C2SP tlog-checkpoint: the log's origin, the
// tree size and the RFC 9162 root hash of the first Size leaves.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
}

// ErrBadCheckpoint means a checkpoint failed to parse or its signature did
// not verify with the given key.
var ErrBadCheckpoint = errors.New("audit: bad checkpoint")

// GenerateKey returns a new Ed25519 signed-note key pair named origin, in
// the golang.org/x/mod/sumdb/note text formats. skey is secret: the caller
// stores it through the barrier and hands note.NewSigner(skey) to the
// Checkpointer; vkey is public and is what verifiers need. origin must be
// a valid note key name (no spaces or '+'), e.g. "phivault.example.org/audit".
func GenerateKey(origin string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, origin)
}

// Body returns the checkpoint text: "<origin>\n<size>\n<base64 root>\n".
func (c Checkpoint) Body() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root))
}

// ParseCheckpoint parses a checkpoint body (without signatures). Extension
// lines after the root are allowed and ignored, as the spec requires.
func ParseCheckpoint(body string) (Checkpoint, error) {
	lines := strings.SplitN(body, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and root lines", ErrBadCheckpoint)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("%w: bad size %q", ErrBadCheckpoint, lines[1])
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != hashSize {
		return Checkpoint{}, fmt.Errorf("%w: bad root hash", ErrBadCheckpoint)
	}
	return Checkpoint{Origin: lines[0], Size: size, Root: root}, nil
}

// SignCheckpoint returns c as a signed note. The signer's name must be the
// origin.
func SignCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	if s.Name() != c.Origin {
		return nil, fmt.Errorf("audit: signer %q does not match origin %q", s.Name(), c.Origin)
	}
	return note.Sign(&note.Note{Text: c.Body()}, s)
}

// OpenCheckpoint verifies a signed checkpoint with v and parses it. It
// fails with ErrBadCheckpoint unless v's signature is present and valid
// and the origin is v's name. Signatures by other keys (witnesses) are
// ignored.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not the key's name %q", ErrBadCheckpoint, c.Origin, v.Name())
	}
	return c, nil
}

// SplitNotes splits a concatenation of signed notes (a witness file) into
// the individual notes. A note is its text, a blank line, and one or more
// signature lines starting with "— "; anything else after the signatures
// starts the next note.
func SplitNotes(data []byte) ([][]byte, error) {
	var (
		out   [][]byte
		start int
		sigs  bool // inside the signature block of the current note
	)
	for p := 0; p < len(data); {
		end := bytes.IndexByte(data[p:], '\n')
		if end < 0 {
			return nil, fmt.Errorf("%w: truncated note at byte %d", ErrBadCheckpoint, p)
		}
		line := data[p : p+end]
		switch {
		case len(line) == 0 && !sigs:
			sigs = true
		case sigs && bytes.HasPrefix(line, []byte("— ")):
		case sigs:
			out = append(out, data[start:p])
			start, sigs = p, false
			continue // reread this line as the start of a new note
		}
		p += end + 1
	}
	if start < len(data) {
		if !sigs {
			return nil, fmt.Errorf("%w: note without signatures at byte %d", ErrBadCheckpoint, start)
		}
		out = append(out, data[start:])
	}
	return out, nil
}
