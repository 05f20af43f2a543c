package account

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ReviewRow is one account in the access review.
type ReviewRow struct {
	ID         string
	Name       string
	Roles      []string
	Created    time.Time
	LastLogin  time.Time // zero: never
	MFA        []string  // second factors enrolled; empty: none
	Dormant    bool      // no login for Options.Dormant (or never, and created longer ago)
	Privileged bool      // holds one of PrivilegedRoles
	// BreakGlassUses counts the audit events flagged break-the-glass that
	// name this user as the actor.
	BreakGlassUses  int
	Training        string    // TrainingCurrent, TrainingExpired or TrainingMissing
	TrainingExpires time.Time // latest expiry of the gating course, if any
	Disabled        bool
	Locked          bool // a lockout is in force
	Reviewed        time.Time
	ReviewedBy      string
}

// Review returns the access review of every account, ordered by id.
// Break-the-glass uses are counted from the whole audit log.
func (d *Directory) Review(ctx context.Context) ([]ReviewRow, error) {
	accounts, err := d.List(ctx)
	if err != nil {
		return nil, err
	}
	btg, err := d.breakGlassUses(ctx)
	if err != nil {
		return nil, err
	}
	now := d.now()
	rows := make([]ReviewRow, 0, len(accounts))
	for _, a := range accounts {
		status, exp := trainingStatus(a, d.opts.TrainingCourse, now)
		last := a.LastLogin
		if last.IsZero() {
			last = a.Created
		}
		rows = append(rows, ReviewRow{
			ID: a.ID, Name: a.Name, Roles: a.Roles, Created: a.Created, LastLogin: a.LastLogin, MFA: a.MFAEnrolled,
			Dormant:        now.Sub(last) >= d.opts.Dormant,
			Privileged:     slices.ContainsFunc(a.Roles, func(r string) bool { return slices.Contains(PrivilegedRoles, r) }),
			BreakGlassUses: btg[a.ID], Training: status, TrainingExpires: exp, Disabled: a.Disabled,
			Locked: now.Before(a.LockedUntil), Reviewed: a.Reviewed, ReviewedBy: a.ReviewedBy,
		})
	}
	return rows, nil
}

// breakGlassUses counts, per user id, the audit events carrying the
// break-the-glass flag.
func (d *Directory) breakGlassUses(ctx context.Context) (map[string]int, error) {
	p := d.opts.Audit.Prover()
	size, err := p.Size(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	flag := []byte(`"urn:phivault:break-glass"`)
	err = p.ScanLeaves(ctx, 0, size, 0, func(_ uint64, leaf []byte) error {
		if !bytes.Contains(leaf, flag) {
			return nil
		}
		var ev struct {
			Agent []struct {
				Who struct {
					Identifier struct{ System, Value string }
				}
				Requestor bool
			}
			Extension []struct {
				URL          string
				ValueBoolean bool
			}
		}
		if json.Unmarshal(leaf, &ev) != nil {
			return nil // not an event this review understands
		}
		if !slices.ContainsFunc(ev.Extension, func(e struct {
			URL          string
			ValueBoolean bool
		}) bool {
			return e.URL == "urn:phivault:break-glass" && e.ValueBoolean
		}) {
			return nil
		}
		for _, a := range ev.Agent {
			if a.Requestor && a.Who.Identifier.System == "urn:phivault:user" {
				out[a.Who.Identifier.Value]++
			}
		}
		return nil
	})
	return out, err
}

// ReviewCSV writes rows as CSV with a header line. Times are RFC 3339 in
// UTC (empty when zero); lists are joined with spaces.
func ReviewCSV(w io.Writer, rows []ReviewRow) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"id", "name", "roles", "created", "last_login", "mfa", "dormant", "privileged",
		"break_glass_uses", "training", "training_expires", "disabled", "locked", "reviewed", "reviewed_by"})
	for _, r := range rows {
		cw.Write([]string{csvText(r.ID), csvText(r.Name), strings.Join(r.Roles, " "), ts(r.Created), ts(r.LastLogin),
			strings.Join(r.MFA, " "), strconv.FormatBool(r.Dormant), strconv.FormatBool(r.Privileged),
			strconv.Itoa(r.BreakGlassUses), r.Training, ts(r.TrainingExpires), strconv.FormatBool(r.Disabled),
			strconv.FormatBool(r.Locked), ts(r.Reviewed), csvText(r.ReviewedBy)})
	}
	cw.Flush()
	return cw.Error()
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// csvText defuses spreadsheet formulas (a name starting with = + - @ is
// read as a formula by spreadsheet programs).
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
