package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

// shreddedName lists destroyed data-key ids, one hex id a line, outside
// the store: a store restored from a backup taken before an erasure still
// holds the wrapped key, and a restore must destroy every key listed here
// again (see docs/keys.md). The file is append-only.
const shreddedName = "shredded-keys"

// Legal holds are kept in the store's metadata under a blind token of the
// patient id; the value (who, when, why) is sealed under the system key.
const holdMeta = "hold/"

type hold struct {
	Since  time.Time `json:"since"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
}

// stdin is where confirmations are read from (tests replace it).
var stdin io.Reader = os.Stdin

func runPatient(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "erase" && args[0] != "hold" && args[0] != "release") {
		return fail(exitUsage, "patient needs a subcommand: erase, hold or release", "phivault patient erase --data DIR PATIENT_ID --reason TEXT")
	}
	sub := args[0]
	fs, data := newFlags("patient "+sub, "--data DIR PATIENT_ID --reason TEXT"+map[bool]string{true: " [--yes]"}[sub == "erase"], stderr)
	reason := fs.String("reason", "", "why (recorded in the audit log; operator text, not patient data)")
	yes := fs.Bool("yes", false, "do not ask for confirmation (erase)")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	if err := needData(*data, "patient"); err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return fail(exitUsage, "give exactly one patient id", "phivault patient "+sub+" --data DIR PATIENT_ID --reason TEXT")
	}
	if strings.TrimSpace(*reason) == "" && sub != "release" {
		return fail(exitUsage, "--reason is required", "say why, e.g. --reason 'GDPR art. 17 request #123'")
	}
	id := pos[0]
	if sub == "erase" && !*yes {
		fmt.Fprintf(stderr, "This destroys the data key of patient %s: every version, history entry and index entry of its\n"+
			"compartment becomes unreadable for good, also in backups. Type the patient id to confirm: ", id)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != id {
			return fail(exitUsage, "not confirmed; nothing was erased", "type the patient id exactly, or pass --yes")
		}
	}
	return onlineOrOffline(*data, stdout, stderr,
		func() (string, bool, error) { return patientOnline(*data, sub, id, *reason) },
		func(n *node, by string) (string, error) {
			return n.patientOp(context.Background(), sub, id, *reason, by)
		})
}

// patientOp places or releases a legal hold, or erases a patient, on an
// open node (offline, or the running server's through its admin socket),
// and returns what to tell the operator. by names the operator in the
// audit records.
func (n *node) patientOp(ctx context.Context, op, id, reason, by string) (string, error) {
	switch op {
	case "hold":
		if err := n.setHold(ctx, id, &hold{Since: time.Now().UTC(), By: by, Reason: reason}, by); err != nil {
			return "", err
		}
		return fmt.Sprintf("patient %s is under legal hold; it cannot be erased until 'phivault patient release'\n", id), nil
	case "release":
		if err := n.setHold(ctx, id, nil, by); err != nil {
			return "", err
		}
		return fmt.Sprintf("legal hold on patient %s released\n", id), nil
	case "erase":
	default:
		return "", fail(exitUsage, "unknown patient operation "+op, "use erase, hold or release")
	}
	if h, err := n.holdOf(ctx, id); err != nil {
		return "", err
	} else if h != nil {
		if err := n.auditEraseRefused(ctx, id, by, reason); err != nil {
			return "", err
		}
		return "", fail(exitFail, fmt.Sprintf("patient %s is under legal hold (since %s: %s); erasure refused", id, h.Since.Format(time.DateOnly), h.Reason),
			"a legal hold is released with 'phivault patient release --data DIR "+id+"' once it no longer applies")
	}
	_, rerr := n.records.Read(ctx, "Patient", id)
	if errors.Is(rerr, barrier.ErrKeyDestroyed) {
		return fmt.Sprintf("patient %s was already erased\n", id), nil
	}
	kid, err := n.erase(ctx, id, by, reason)
	if errors.Is(err, barrier.ErrNoKey) {
		return "", fail(exitFail, "no data of patient "+id+" is stored", "check the id (Patient/<id>)")
	}
	if err != nil {
		return "", err
	}
	out := fmt.Sprintf("patient %s erased: data key %s destroyed (recorded in %s and the audit log; copy that file off-site)\n", id, kid, filepath.Join(n.dir, shreddedName))
	if err := n.scrub(ctx); err != nil {
		out += "warning: the database's write-ahead log still holds the old wrapped key (" + err.Error() + "); it goes at the next checkpoint\n"
	}
	return out, nil
}

// scrub makes the store drop overwritten values from its files now (the
// wrapped copy of a destroyed key), where the backend can (SQLite: a
// truncating checkpoint); it tries a few times while readers hold the
// write-ahead log.
func (n *node) scrub(ctx context.Context) error {
	s, ok := n.db.(interface{ Scrub(context.Context) error })
	if !ok {
		return nil // PostgreSQL: see docs/keys.md (VACUUM, WAL archives)
	}
	var err error
	for range 3 {
		if err = s.Scrub(ctx); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// auditEraseRefused records an erasure refused because of a legal hold.
func (n *node) auditEraseRefused(ctx context.Context, id, by, reason string) error {
	ev := &audit.Event{Time: time.Now().UTC(), Interaction: "erase", Action: "D", Outcome: audit.MinorFailure,
		OutcomeDesc: "refused: legal hold; reason given: " + reason, UserID: by, Roles: []string{"administrator"},
		Policies: []string{"operator-path", "legal-hold"}, Patients: []string{id}, Entities: []string{"Patient/" + id}}
	return n.db.Update(ctx, func(tx store.Writer) error {
		_, err := tx.AppendAudit(ev.Leaf())
		return err
	})
}

// erase destroys the patient compartment's data key and appends the audit
// record in the same transaction, then lists the key id in shredded-keys.
func (n *node) erase(ctx context.Context, id, by, reason string) (barrier.KeyID, error) {
	ev := &audit.Event{Time: time.Now().UTC(), Interaction: "erase", Action: "D", Outcome: audit.Success,
		OutcomeDesc: "crypto-shredded; reason: " + reason, UserID: by, Roles: []string{"administrator"},
		Allowed: true, Policies: []string{"operator-path"}, Patients: []string{id}, Entities: []string{"Patient/" + id}}
	leaf := ev.Leaf()
	kid, err := n.barrier.Destroy(ctx, "patient/"+id, func(tx store.Writer) error {
		if _, err := tx.Meta(holdMeta + n.holdToken(id)); err == nil {
			return fail(exitFail, "patient "+id+" was put under legal hold meanwhile; erasure refused", "")
		}
		_, err := tx.AppendAudit(leaf)
		return err
	})
	if err != nil {
		return kid, err
	}
	return kid, appendShredded(n.dir, kid)
}

func appendShredded(dir string, id barrier.KeyID) error {
	f, err := os.OpenFile(filepath.Join(dir, shreddedName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("the key was destroyed but %s could not be updated: %w", shreddedName, err)
	}
	if _, err = fmt.Fprintln(f, id); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readShredded returns the key ids listed in DIR/shredded-keys (none if
// the file does not exist).
func readShredded(dir string) ([]barrier.KeyID, error) {
	ids, err := readShreddedFile(filepath.Join(dir, shreddedName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return ids, err
}

func (n *node) holdToken(id string) string {
	return hex.EncodeToString(n.barrier.Token("legal-hold", id))
}

func holdContext(id string) []byte { return barrier.Context("legal-hold", id) }

// setHold places (h non-nil) or releases a legal hold, with its audit
// record in the same transaction.
func (n *node) setHold(ctx context.Context, id string, h *hold, by string) error {
	ev := &audit.Event{Time: time.Now().UTC(), Interaction: "legal-hold", Action: "U", Outcome: audit.Success,
		UserID: by, Roles: []string{"administrator"}, Allowed: true,
		Policies: []string{"operator-path"}, Patients: []string{id}, Entities: []string{"Patient/" + id}, OutcomeDesc: "released"}
	var sealed []byte
	if h != nil {
		raw, _ := json.Marshal(h)
		var err error
		if sealed, err = n.barrier.Seal(ctx, "system", holdContext(id), raw); err != nil {
			return err
		}
		ev.OutcomeDesc = "placed; reason: " + h.Reason
	}
	key := holdMeta + n.holdToken(id)
	return n.db.Update(ctx, func(tx store.Writer) error {
		var err error
		if h == nil {
			err = tx.DeleteMeta(key)
		} else {
			err = tx.SetMeta(key, sealed)
		}
		if err != nil {
			return err
		}
		_, err = tx.AppendAudit(ev.Leaf())
		return err
	})
}

// holdOf returns the legal hold on a patient, or nil.
func (n *node) holdOf(ctx context.Context, id string) (*hold, error) {
	var sealed []byte
	err := n.db.View(ctx, func(r store.Reader) error {
		var err error
		sealed, err = r.Meta(holdMeta + n.holdToken(id))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	raw, err := n.barrier.Open(ctx, holdContext(id), sealed)
	if err != nil {
		return nil, fmt.Errorf("legal hold record: %w", err)
	}
	var h hold
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("legal hold record: %v", err)
	}
	return &h, nil
}

// parseInterleaved parses flags that may come before or after positional
// arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
