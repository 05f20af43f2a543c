package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/server"
)

// drillResult is what a restore drill records in the live node's audit
// log: the snapshot drilled and, on failure, the name of the failed check
// (a fixed phrase such as "restore" or "search Patient": no patient data).
type drillResult struct {
	Snapshot string `json:"snapshot"` // 32 hex digits, or "" when none was found
	Failed   string `json:"failed"`   // "" on PASS
}

// event is the audit event of r, recorded for by.
func (r drillResult) event(by string) *audit.Event {
	ev := &audit.Event{Time: time.Now(), Interaction: "restore-drill", Action: "E", Outcome: audit.Success, UserID: by,
		Roles: []string{authn.OperatorRole}, Allowed: true, Policies: []string{"operator-path"}}
	if r.Snapshot != "" {
		ev.Entities = []string{"urn:phivault:backup-snapshot:" + r.Snapshot}
	}
	if r.Failed != "" {
		ev.Outcome, ev.OutcomeDesc = audit.SeriousFail, "restore drill failed: "+r.Failed
	}
	return ev
}

// valid reports whether r is what runRestoreDrill sends: a snapshot id
// or nothing, and a short check name of letters, digits and spaces.
func (r drillResult) valid() bool {
	if r.Snapshot != "" && (len(r.Snapshot) != 32 || strings.Trim(r.Snapshot, "0123456789abcdef") != "") {
		return false
	}
	if len(r.Failed) > 64 {
		return false
	}
	for _, c := range r.Failed {
		if !(c == ' ' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// adminDrillHandler serves POST /admin/backup/drill on the admin socket:
// it records a drill's result in the running server's audit log (400 for
// a malformed result, 503 when the audit log cannot append).
func (n *node) adminDrillHandler(w http.ResponseWriter, r *http.Request) {
	var res drillResult
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&res); err != nil || !res.valid() {
		http.Error(w, "a drill result is {\"snapshot\": 32 hex digits, \"failed\": the failed check or \"\"}", http.StatusBadRequest)
		return
	}
	if err := n.audit.Record(r.Context(), res.event(operatorOf(r))); err != nil {
		http.Error(w, "the audit log is unavailable; the drill is not recorded", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// recordDrill appends res to the audit log of the live data directory:
// through its server's admin socket when one runs, else by opening the
// directory. Without a live directory, or when neither works, the drill
// is only printed, and it says so.
func recordDrill(ctx context.Context, live string, res drillResult, stdout, stderr io.Writer) {
	if live == "" {
		fmt.Fprintln(stdout, "drill not recorded in an audit log: no --data LIVEDIR given")
		return
	}
	body, _ := json.Marshal(res)
	c := server.AdminClient(filepath.Join(live, server.SocketName))
	resp, err := c.Post("http://phivault/admin/backup/drill", "application/json", strings.NewReader(string(body)))
	if err == nil {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if resp.StatusCode != http.StatusOK {
			fmt.Fprintln(stderr, "warning: drill not recorded: the server refused: "+strings.TrimSpace(string(b)))
			return
		}
		fmt.Fprintln(stdout, "drill recorded in the audit log of the server serving", live)
		return
	}
	n, err := openNode(ctx, live, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		fmt.Fprintln(stderr, "warning: drill not recorded: a server holds "+live+" but its admin socket does not answer")
		return
	}
	if err != nil {
		fmt.Fprintln(stderr, "warning: drill not recorded in "+live+": "+firstLine(err.Error()))
		return
	}
	defer n.close()
	if err := n.audit.Record(ctx, res.event("operator:cli")); err != nil {
		fmt.Fprintln(stderr, "warning: drill not recorded in "+live+": "+err.Error())
		return
	}
	fmt.Fprintln(stdout, "drill recorded in the audit log of", live)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
