package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/phivault/phivault/internal/server"
)

// patientRequest is the body of POST /admin/patient/{erase,hold,release}
// on the admin socket. The confirmation of an erasure is asked by the
// command before it sends the request.
type patientRequest struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// patientAnswer is the socket's answer: the text for the operator, or a
// one-line error with its hint and the command's exit code.
type patientAnswer struct {
	Text  string `json:"text,omitempty"`
	Error string `json:"error,omitempty"`
	Hint  string `json:"hint,omitempty"`
	Code  int    `json:"code,omitempty"`
}

// patientOnline runs a patient operation through the admin socket of the
// server running on dir. online is false when no server answers there
// (the caller then opens the directory itself).
func patientOnline(dir, op, id, reason string) (out string, online bool, err error) {
	body, _ := json.Marshal(patientRequest{ID: id, Reason: reason})
	return adminCall(dir, "/admin/patient/"+op, body)
}

// adminCall posts body to path on the admin socket of the server running
// on dir and returns the operator text of its patientAnswer, or its error
// as a cliError. online is false when no server answers there.
func adminCall(dir, path string, body []byte) (out string, online bool, err error) {
	c := server.AdminClient(filepath.Join(dir, server.SocketName))
	resp, err := c.Post("http://phivault"+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return "", false, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var a patientAnswer
	if json.Unmarshal(raw, &a) != nil {
		return "", true, fail(exitFail, "the server refused: "+strings.TrimSpace(string(raw)), "")
	}
	if resp.StatusCode != http.StatusOK {
		return "", true, fail(max(a.Code, exitFail), a.Error, a.Hint)
	}
	return a.Text, true, nil
}

// onlineOrOffline runs an operator operation through the admin socket of
// the server running on dir (online), or else on dir opened here (offline,
// by the operator of this process), and prints the operator text.
func onlineOrOffline(dir string, stdout, stderr io.Writer, online func() (string, bool, error), offline func(n *node, by string) (string, error)) error {
	out, isOnline, err := online()
	if !isOnline {
		var n *node
		n, err = openNode(context.Background(), dir, slog.New(slog.DiscardHandler), stderr)
		if errors.Is(err, errLocked) {
			return fail(exitFail, "a server holds "+dir+" but its admin socket does not answer", "is it starting or sealed? try again")
		}
		if err != nil {
			return err
		}
		defer n.close()
		out, err = offline(n, fmt.Sprintf("operator:uid-%d", os.Getuid()))
	}
	if err == nil {
		fmt.Fprint(stdout, out)
	}
	return err
}

// writeAnswer sends a on the admin socket.
func writeAnswer(w http.ResponseWriter, status int, a patientAnswer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(a)
}

// adminPatientHandler serves POST /admin/patient/{op} (erase, hold,
// release) on the admin socket: the same operation as offline, on the
// running server's store and barrier, so that an erasure takes effect in
// its cache at once. The caller (from the socket's peer credentials) is
// named in the audit records.
func (n *node) adminPatientHandler(w http.ResponseWriter, r *http.Request) {
	answer := func(status int, a patientAnswer) { writeAnswer(w, status, a) }
	if n.seal != nil && n.seal.sealed.Load() {
		answer(http.StatusServiceUnavailable, patientAnswer{Error: "the server is sealed", Hint: "unseal it with 'phivault unseal'", Code: exitKeys})
		return
	}
	op := r.PathValue("op")
	if op != "erase" && op != "hold" && op != "release" {
		answer(http.StatusNotFound, patientAnswer{Error: "unknown patient operation", Hint: "use erase, hold or release", Code: exitUsage})
		return
	}
	var req patientRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil || strings.TrimSpace(req.ID) == "" {
		answer(http.StatusBadRequest, patientAnswer{Error: "the request needs a JSON body with the patient id", Hint: `{"id": "...", "reason": "..."}`, Code: exitUsage})
		return
	}
	if op != "release" && strings.TrimSpace(req.Reason) == "" {
		answer(http.StatusBadRequest, patientAnswer{Error: "a reason is required", Hint: "say why, e.g. --reason 'GDPR art. 17 request #123'", Code: exitUsage})
		return
	}
	out, err := n.patientOp(r.Context(), op, req.ID, req.Reason, operatorOf(r))
	var ce *cliError
	switch {
	case errors.As(err, &ce):
		status := http.StatusConflict
		if ce.code == exitUsage {
			status = http.StatusBadRequest
		}
		answer(status, patientAnswer{Error: ce.msg, Hint: ce.hint, Code: ce.code})
	case err != nil:
		if n.log != nil {
			n.log.Error("patient operation failed", "op", op, "err", err.Error())
		}
		answer(http.StatusInternalServerError, patientAnswer{Error: "the operation failed: " + err.Error(), Code: exitFail})
	default:
		answer(http.StatusOK, patientAnswer{Text: out})
	}
}
