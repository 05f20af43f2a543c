package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/store"
)

// runReindex rebuilds the blind index of a data directory with the search
// parameters in use (the R4 ones and the stored custom SearchParameters):
// through the running server's admin socket when one serves the
// directory (reads and writes go on), or on the directory itself.
func runReindex(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("reindex", "--data DIR [--type TYPE[,TYPE...]]", stderr)
	typeList := fs.String("type", "", "only these resource types (comma-separated); default: every type")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "reindex"); err != nil {
		return err
	}
	var types []string
	for _, t := range strings.Split(*typeList, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if !fhir.IsResourceType(t) {
			return fail(exitUsage, fmt.Sprintf("%q is not a FHIR R4 resource type", t), "resource types are spelled as in FHIR, e.g. --type Observation,Patient")
		}
		types = append(types, t)
	}
	return onlineOrOffline(*data, stdout, stderr,
		func() (string, bool, error) { return reindexOnline(*data, types) },
		func(n *node, by string) (string, error) { return n.reindex(context.Background(), types, by) })
}

// reindex runs the reindex on an open node, audited before it starts and
// when it ends, and returns the report for the operator.
func (n *node) reindex(ctx context.Context, types []string, by string) (string, error) {
	what := "every resource type"
	if len(types) > 0 {
		what = strings.Join(types, ",")
	}
	if err := n.auditReindex(ctx, by, audit.Success, "reindex started: "+what); err != nil {
		return "", fmt.Errorf("audit of the reindex: %w", err)
	}
	start := time.Now()
	rep, err := n.search.Reindex(ctx, types, nil)
	outcome, desc := audit.Success, fmt.Sprintf("reindex done: %d resources of %d types", rep.Resources, rep.Types)
	if err != nil {
		outcome, desc = audit.SeriousFail, fmt.Sprintf("reindex failed after %d resources of %d types", rep.Resources, rep.Types)
	}
	if aerr := n.auditReindex(ctx, by, outcome, desc); aerr != nil && err == nil {
		err = fmt.Errorf("audit of the reindex: %w", aerr)
	}
	if err != nil {
		return "", fail(exitFail, "reindex: "+err.Error(), "the index is still usable; run 'phivault reindex' again")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "reindexed %d resources of %d types in %v", rep.Resources, rep.Types, time.Since(start).Round(time.Millisecond))
	if rep.Raced > 0 || rep.Skipped > 0 {
		fmt.Fprintf(&b, " (%d written and %d deleted or erased during the run, indexed by their own writes)", rep.Raced, rep.Skipped)
	}
	b.WriteString("\n")
	for _, c := range n.search.CustomParams() {
		switch {
		case c.Problem != "":
			fmt.Fprintf(&b, "custom parameter SearchParameter/%s: NOT IN USE: %s\n", c.ID, c.Problem)
		case len(c.Pending) > 0:
			fmt.Fprintf(&b, "custom parameter %s (SearchParameter/%s): still incomplete for %s\n", c.Code, c.ID, strings.Join(c.Pending, ","))
		default:
			fmt.Fprintf(&b, "custom parameter %s (SearchParameter/%s): complete for %s\n", c.Code, c.ID, strings.Join(c.Base, ","))
		}
	}
	return b.String(), nil
}

func (n *node) auditReindex(ctx context.Context, by string, outcome string, desc string) error {
	ev := &audit.Event{Time: time.Now().UTC(), Interaction: "reindex", Action: "E", Outcome: outcome, OutcomeDesc: desc,
		UserID: by, Roles: []string{"administrator"}, Allowed: true, Policies: []string{"operator-path"}}
	return n.db.Update(ctx, func(tx store.Writer) error {
		_, err := tx.AppendAudit(ev.Leaf())
		return err
	})
}

// reindexOnline runs the reindex through the admin socket of the server
// running on dir; online is false when none answers there.
func reindexOnline(dir string, types []string) (out string, online bool, err error) {
	q := url.Values{}
	if len(types) > 0 {
		q.Set("type", strings.Join(types, ","))
	}
	return adminCall(dir, "/admin/reindex?"+q.Encode(), nil)
}

// adminReindexHandler serves POST /admin/reindex?type=T,... on the admin
// socket. The reindex outlives its request (an interrupted command does not
// stop it halfway); its audit records say when it ended.
func (n *node) adminReindexHandler(w http.ResponseWriter, r *http.Request) {
	answer := func(status int, a patientAnswer) { writeAnswer(w, status, a) }
	if n.seal != nil && n.seal.sealed.Load() {
		answer(http.StatusServiceUnavailable, patientAnswer{Error: "the server is sealed", Hint: "unseal it with 'phivault unseal'", Code: exitKeys})
		return
	}
	var types []string
	for _, t := range strings.Split(r.URL.Query().Get("type"), ",") {
		if t == "" {
			continue
		}
		if !fhir.IsResourceType(t) {
			answer(http.StatusBadRequest, patientAnswer{Error: "not a FHIR R4 resource type", Hint: "e.g. --type Observation,Patient", Code: exitUsage})
			return
		}
		types = append(types, t)
	}
	out, err := n.reindex(context.WithoutCancel(r.Context()), types, operatorOf(r))
	var ce *cliError
	switch {
	case errors.As(err, &ce):
		answer(http.StatusInternalServerError, patientAnswer{Error: ce.msg, Hint: ce.hint, Code: ce.code})
	case err != nil:
		answer(http.StatusInternalServerError, patientAnswer{Error: err.Error(), Code: exitFail})
	default:
		answer(http.StatusOK, patientAnswer{Text: out})
	}
}
