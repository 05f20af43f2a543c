package account

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/store"
)

var ctx = context.Background()

func TestCreateRejects(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	mustCreate(t, d, "alice", "physician")
	tests := []struct {
		name string
		a    Account
		pw   Password
		want error
	}{
		{"taken id", Account{ID: "alice", Roles: []string{"nurse"}}, goodPW, ErrExists},
		{"weak password", Account{ID: "bob", Roles: []string{"nurse"}}, "password1234", ErrWeakPassword},
		{"password holds the id", Account{ID: "bob", Roles: []string{"nurse"}}, "bob-violet-otter", ErrWeakPassword},
		{"no role", Account{ID: "bob"}, goodPW, ErrInvalid},
		{"unknown role", Account{ID: "bob", Roles: []string{"superuser"}}, goodPW, ErrInvalid},
		{"duplicate role", Account{ID: "bob", Roles: []string{"nurse", "nurse"}}, goodPW, ErrInvalid},
		{"administrator and physician", Account{ID: "bob", Roles: []string{"administrator", "physician"}}, goodPW, ErrSeparation},
		{"administrator and patient", Account{ID: "bob", Roles: []string{"patient", "administrator"}}, goodPW, ErrSeparation},
		{"empty id", Account{Roles: []string{"nurse"}}, goodPW, ErrInvalid},
		{"id with space", Account{ID: "bob smith", Roles: []string{"nurse"}}, goodPW, ErrInvalid},
		{"id too long", Account{ID: strings.Repeat("b", 129), Roles: []string{"nurse"}}, goodPW, ErrInvalid},
		{"control character in name", Account{ID: "bob", Name: "Bob\nSmith", Roles: []string{"nurse"}}, goodPW, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := d.Create(ctx, tt.a, tt.pw, "admin1"); !errors.Is(err, tt.want) {
				t.Fatalf("Create = %v, want %v", err, tt.want)
			}
		})
	}
	// Nothing but alice was stored.
	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != "alice" {
		t.Fatalf("List = %v, want only alice", list)
	}
	// Administrators with non-patient roles are fine.
	if err := d.Create(ctx, Account{ID: "root1", Roles: []string{"administrator", "security-officer"}}, goodPW, "admin1"); err != nil {
		t.Fatal(err)
	}
	if err := d.SetRoles(ctx, "root1", []string{"administrator", "nurse"}, "admin1"); !errors.Is(err, ErrSeparation) {
		t.Fatalf("SetRoles adding nurse to an administrator = %v, want ErrSeparation", err)
	}
}

func TestCreateGetLogin(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	in := Account{ID: "dr.smith@example.org", Name: "Dr Smith", Roles: []string{"physician"}, Practitioner: "prac-1", Department: "cardiology",
		Epoch: 99, Disabled: true} // Create ignores these
	if err := d.Create(ctx, in, goodPW, "admin1"); err != nil {
		t.Fatal(err)
	}
	got, err := d.Get(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := Account{ID: in.ID, Name: "Dr Smith", Roles: []string{"physician"}, Practitioner: "prac-1", Department: "cardiology", Epoch: 1, Created: e.clk.Now()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Get (-want +got):\n%s", diff)
	}
	e.clk.Add(time.Hour)
	a, err := d.Login(ctx, in.ID, goodPW, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if !a.LastLogin.Equal(e.clk.Now()) {
		t.Errorf("LastLogin = %v, want %v", a.LastLogin, e.clk.Now())
	}
	if _, err := d.Login(ctx, "DR.SMITH@example.org", goodPW, "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("ids are case-sensitive; login as another spelling = %v", err)
	}
	if got := e.auditCount(t, `"code":"login"`, "dr.smith@example.org", "10.0.0.1"); got != 1 {
		t.Errorf("%d login audit events, want 1", got)
	}
	if _, err := d.Get(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nobody) = %v", err)
	}
	// SetPassword: the old password stops working, the new one works.
	const pw2 = Password("granite-lantern-mosaic-7")
	if err := d.SetPassword(ctx, in.ID, "short", "admin1"); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("SetPassword(short) = %v", err)
	}
	if err := d.SetPassword(ctx, in.ID, pw2, "admin1"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Login(ctx, in.ID, goodPW, "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after SetPassword: %v", err)
	}
	if _, err := d.Login(ctx, in.ID, pw2, "10.0.0.1"); err != nil {
		t.Errorf("new password: %v", err)
	}
}

func TestDisableRevokeValid(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	mustCreate(t, d, "alice", "physician")
	if _, err := d.Valid(ctx, "alice", 1); err != nil {
		t.Fatal(err)
	}
	if err := d.Revoke(ctx, "alice", "admin1"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Valid(ctx, "alice", 1); !errors.Is(err, ErrRevoked) {
		t.Fatalf("old epoch after Revoke: %v, want ErrRevoked", err)
	}
	if _, err := d.Valid(ctx, "alice", 2); err != nil {
		t.Fatalf("new epoch after Revoke: %v", err)
	}
	if err := d.Disable(ctx, "alice", "admin1", "left the hospital"); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []int{1, 2, 3} {
		if _, err := d.Valid(ctx, "alice", ep); err == nil {
			t.Fatalf("disabled account valid at epoch %d", ep)
		}
	}
	if err := d.Enable(ctx, "alice", "admin1", "back"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Valid(ctx, "alice", 2); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Enable must not revive sessions ended by Disable: %v", err)
	}
	if _, err := d.Valid(ctx, "nobody", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if got := e.auditCount(t, `"code":"user-disable"`, "admin1", "urn:phivault:user:alice"); got != 1 {
		t.Errorf("%d user-disable events, want 1", got)
	}
}

// Another node (a second Directory over the same store) sees a change
// made elsewhere within Refresh (2 s) of its clock.
func TestOtherNodeSeesDisable(t *testing.T) {
	e := newEnv(t)
	a, b := e.open(t), e.open(t)
	mustCreate(t, a, "alice", "nurse")
	if _, err := b.Valid(ctx, "alice", 1); err != nil {
		t.Fatal(err) // b has alice cached now
	}
	if err := a.Disable(ctx, "alice", "admin1", "stolen laptop"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Valid(ctx, "alice", 2); !errors.Is(err, ErrDisabled) {
		t.Fatalf("node a: %v, want ErrDisabled at once", err)
	}
	e.clk.Add(2 * time.Second)
	if _, err := b.Valid(ctx, "alice", 1); !errors.Is(err, ErrDisabled) {
		t.Fatalf("node b 2s later: %v, want ErrDisabled", err)
	}
}

func TestValidPrincipalAndTraining(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	if err := d.Create(ctx, Account{ID: "nina", Roles: []string{"nurse"}, Practitioner: "prac-9", Department: "icu"}, goodPW, "admin1"); err != nil {
		t.Fatal(err)
	}
	want := policy.Principal{UserID: "nina", Roles: []string{"nurse"}, Practitioner: "prac-9", Department: "icu"}
	got, err := d.Valid(ctx, "nina", 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("untrained (-want +got):\n%s", diff)
	}
	now := e.clk.Now()
	bad := []Training{
		{Course: "", Completed: now, Expires: now.AddDate(1, 0, 0)},
		{Course: "hipaa", Expires: now.AddDate(1, 0, 0)},
		{Course: "hipaa", Completed: now, Expires: now.AddDate(0, 0, -1)},
		{Course: "hipaa", Completed: now.AddDate(0, 1, 0), Expires: now.AddDate(1, 0, 0)},
	}
	for _, tr := range bad {
		if err := d.RecordTraining(ctx, "nina", tr, "officer"); !errors.Is(err, ErrInvalid) {
			t.Errorf("RecordTraining(%+v) = %v, want ErrInvalid", tr, err)
		}
	}
	if err := d.RecordTraining(ctx, "nina", Training{Course: "fire-safety", Completed: now, Expires: now.AddDate(1, 0, 0)}, "officer"); err != nil {
		t.Fatal(err)
	}
	if p, _ := d.Valid(ctx, "nina", 1); p.Trained {
		t.Fatal("another course opened the HIPAA gate")
	}
	if err := d.RecordTraining(ctx, "nina", Training{Course: "hipaa", Completed: now.AddDate(0, 0, -1), Expires: now.AddDate(0, 0, 30)}, "officer"); err != nil {
		t.Fatal(err)
	}
	if p, _ := d.Valid(ctx, "nina", 1); !p.Trained {
		t.Fatal("current HIPAA training: Trained is false")
	}
	e.clk.Add(31 * 24 * time.Hour)
	if p, _ := d.Valid(ctx, "nina", 1); p.Trained {
		t.Fatal("expired HIPAA training: Trained is true")
	}
	// With the gate off everyone counts as trained.
	off := e.open(t, func(o *Options) { o.TrainingRequired = false })
	if p, _ := off.Valid(ctx, "nina", 1); !p.Trained {
		t.Fatal("gate off: Trained is false")
	}
	// The caller cannot change the cached roles through the principal.
	p, _ := d.Valid(ctx, "nina", 1)
	p.Roles[0] = "administrator"
	if p2, _ := d.Valid(ctx, "nina", 1); p2.Roles[0] != "nurse" {
		t.Fatal("principal roles alias the cache")
	}
}

func TestRecertify(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	mustCreate(t, d, "rita", "physician", "researcher")
	if _, err := d.Valid(ctx, "rita", 1); err != nil {
		t.Fatal(err)
	}
	if err := d.Recertify(ctx, "rita", []string{"physician", "nurse"}, "reviewer1"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("keeping a role not held: %v, want ErrInvalid", err)
	}
	if err := d.Recertify(ctx, "rita", []string{"physician"}, "reviewer1"); err != nil {
		t.Fatal(err)
	}
	// At once: the old session is revoked and the role is gone.
	if _, err := d.Valid(ctx, "rita", 1); !errors.Is(err, ErrRevoked) {
		t.Fatalf("old epoch after revoking a role: %v", err)
	}
	p, err := d.Valid(ctx, "rita", 2)
	if err != nil || !cmp.Equal(p.Roles, []string{"physician"}) {
		t.Fatalf("Valid after recertify: %v %v", p.Roles, err)
	}
	a, _ := d.Get(ctx, "rita")
	if a.ReviewedBy != "reviewer1" || !a.Reviewed.Equal(e.clk.Now()) {
		t.Errorf("review not recorded: %q %v", a.ReviewedBy, a.Reviewed)
	}
	if got := e.auditCount(t, `"code":"user-recertify"`, "reviewer1", "revoked researcher"); got != 1 {
		t.Errorf("%d recertify events naming the revoked role, want 1", got)
	}
	// Keeping everything moves no epoch.
	if err := d.Recertify(ctx, "rita", []string{"physician"}, "reviewer1"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Valid(ctx, "rita", 2); err != nil {
		t.Fatalf("keep-all recertification revoked sessions: %v", err)
	}
}

func TestUpdateMFA(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	mustCreate(t, d, "alice", "nurse")
	if err := d.UpdateMFA(ctx, "nobody", func(*MFA) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	boom := errors.New("boom")
	if err := d.UpdateMFA(ctx, "alice", func(m *MFA) error { m.TOTPSecret = Secret("x"); return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if m, _ := d.MFA(ctx, "alice"); len(m.TOTPSecret) != 0 {
		t.Fatal("a failed update was written")
	}
	if err := d.UpdateMFA(ctx, "alice", func(m *MFA) error { m.TOTPSecret = Secret("0123456789abcdef0123"); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := d.UpdateMFA(ctx, "alice", func(m *MFA) error { m.Passkeys = append(m.Passkeys, []byte(`{"id":"a"}`)); return nil }); err != nil {
		t.Fatal(err)
	}
	m, err := d.MFA(ctx, "alice")
	if err != nil || string(m.TOTPSecret) != "0123456789abcdef0123" || len(m.Passkeys) != 1 {
		t.Fatalf("MFA = %+v, %v", m, err)
	}
	if a, _ := d.Get(ctx, "alice"); !cmp.Equal(a.MFAEnrolled, []string{"totp", "passkey"}) {
		t.Fatalf("MFAEnrolled = %v", a.MFAEnrolled)
	}
	if err := d.UpdateMFA(ctx, "alice", func(m *MFA) error { m.TOTPSecret = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if a, _ := d.Get(ctx, "alice"); !cmp.Equal(a.MFAEnrolled, []string{"passkey"}) {
		t.Fatalf("MFAEnrolled after removing TOTP = %v", a.MFAEnrolled)
	}
}

// The store sees neither user ids, names nor password hashes: every meta
// key and value this package wrote is blind or sealed.
func TestRecordsOpaque(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	id, name := "dr.quinn.medicine@example.org", "Michaela Quinn"
	if err := d.Create(ctx, Account{ID: id, Name: name, Roles: []string{"physician"}}, goodPW, "admin1"); err != nil {
		t.Fatal(err)
	}
	d.UpdateMFA(ctx, id, func(m *MFA) error { m.TOTPSecret = Secret("totp-secret-material"); return nil })
	var rec record
	if _, err := d.load(ctx, d.accountKey(id), &rec); err != nil {
		t.Fatal(err)
	}
	_, _, key, _ := parsePHC(rec.Hash)
	needles := map[string][]byte{"id": []byte(id), "name": []byte(name), "hash": []byte(rec.Hash), "raw hash": key,
		"hash salt part": []byte(strings.Split(rec.Hash, "$")[4]), "totp": []byte("totp-secret-material"), "argon2id": []byte("argon2id")}
	var kvs []store.KV
	e.st.View(ctx, func(r store.Reader) error {
		a, _ := r.MetaPrefix(accountMeta)
		m, _ := r.MetaPrefix(mfaMeta)
		kvs = append(a, m...)
		return nil
	})
	if len(kvs) != 2 {
		t.Fatalf("%d records, want 2", len(kvs))
	}
	for _, kv := range kvs {
		if _, err := hex.DecodeString(kv.Key[strings.IndexByte(kv.Key, '/')+1:]); err != nil {
			t.Errorf("meta key %q is not a blind name", kv.Key)
		}
		for what, n := range needles {
			if bytes.Contains([]byte(kv.Key), n) || bytes.Contains(kv.Value, n) {
				t.Errorf("the %s appears in plaintext in meta %q", what, kv.Key)
			}
		}
	}
	// Nor does any file the store wrote (database, WAL): the name, hash and
	// TOTP secret appear nowhere. (User ids do, in audit events, by design.)
	files, _ := filepath.Glob(filepath.Join(e.dir, "db", "*"))
	if len(files) == 0 {
		t.Fatal("no store files to scan")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, what := range []string{"name", "hash", "raw hash", "hash salt part", "totp", "argon2id"} {
			if bytes.Contains(raw, needles[what]) {
				t.Errorf("the %s appears in plaintext in %s", what, filepath.Base(f))
			}
		}
	}
	// A record moved under another account's key does not open (AAD).
	mustCreate(t, d, "eve", "nurse")
	e.st.Update(ctx, func(tx store.Writer) error {
		v, _ := tx.Meta(d.accountKey(id))
		return tx.SetMeta(d.accountKey("eve"), v)
	})
	if _, err := d.Get(ctx, "eve"); err == nil {
		t.Fatal("a record swapped to another key opened")
	}
}

func TestDirectoryNeedsAudit(t *testing.T) {
	e := newEnv(t)
	if _, err := Open(ctx, e.st, e.b, Options{}); err == nil {
		t.Fatal("Open without an audit log succeeded")
	}
}
