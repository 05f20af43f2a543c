package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/authn/account"
)

// demoAccountsName is the file (mode 0600) where the demo lists the
// console accounts it created and their passwords.
const demoAccountsName = "demo-accounts"

// demoAccounts creates the demo's console users: a physician acting as
// the first patient's general practitioner (gp, "Practitioner/ID"), and a
// privacy officer; both with current HIPAA training. Their random
// passwords go to DIR/demo-accounts.
func demoAccounts(dir, gp string, stderr io.Writer) error {
	ctx := context.Background()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), stderr)
	if err != nil {
		return err
	}
	defer n.close()
	d, err := account.Open(ctx, n.db, n.barrier, account.DefaultOptions(n.audit))
	if err != nil {
		return err
	}
	users := []account.Account{
		{ID: "dr.demo", Name: "Demo Physician", Roles: []string{"physician"}, Practitioner: strings.TrimPrefix(gp, "Practitioner/")},
		{ID: "privacy.demo", Name: "Demo Privacy Officer", Roles: []string{"privacy-officer"}},
	}
	var list strings.Builder
	now := time.Now().UTC()
	for _, u := range users {
		pw := account.Password(rand.Text())
		if err := d.Create(ctx, u, pw, "operator:demo"); err != nil {
			return fmt.Errorf("demo account %s: %w", u.ID, err)
		}
		t := account.Training{Course: "hipaa", Completed: now, Expires: now.AddDate(1, 0, 0), Recorded: "operator:demo"}
		if err := d.RecordTraining(ctx, u.ID, t, "operator:demo"); err != nil {
			return err
		}
		fmt.Fprintf(&list, "%s\t%s\t%s\n", u.ID, strings.Join(u.Roles, ","), string(pw))
	}
	return os.WriteFile(filepath.Join(dir, demoAccountsName), []byte(list.String()), 0o600)
}

// generalPractitioner returns the reference of the first Patient's
// general practitioner in a bundle, or "".
func generalPractitioner(b map[string]any) string {
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		ent, _ := e.(map[string]any)
		res, _ := ent["resource"].(map[string]any)
		if res["resourceType"] != "Patient" {
			continue
		}
		gps, _ := res["generalPractitioner"].([]any)
		for _, g := range gps {
			ref, _ := g.(map[string]any)
			if s, _ := ref["reference"].(string); strings.HasPrefix(s, "Practitioner/") {
				return s
			}
		}
		return ""
	}
	return ""
}
