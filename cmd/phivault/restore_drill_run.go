package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/phivault/phivault/internal/backup"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// drill is one restore drill: the scratch data directory, the snapshot
// restored, and what the smoke queries measured.
type drill struct {
	dir            string
	stdout, stderr io.Writer
	m              *backup.Manifest
	rto            time.Duration // restore start to the first successful query
	searched       int64         // resources counted by the searches
}

// run restores, checks, serves and queries; on failure it returns the
// name of the check that failed with the error.
func (d *drill) run(ctx context.Context, st backup.Storage, ids []age.Identity, start time.Time) (string, error) {
	rd, err := backup.OpenReaderIn(st, ids)
	if err != nil {
		return "open repository", repoError(err)
	}
	if d.m, err = rd.Latest(); err != nil {
		return "find the latest snapshot", err
	}
	if err := rd.Restore(ctx, d.m, d.dir); err != nil {
		return "restore", err
	}
	fmt.Fprintf(d.stdout, "restored snapshot %s (%s) in %s\n", d.m.ID, d.m.Created.Format(time.RFC3339), time.Since(start).Round(time.Millisecond))
	counts, err := rebuildRestored(ctx, d.dir, d.m, d.stdout, d.stderr)
	if err != nil {
		return "rebuild", err
	}
	rm := *d.m
	rm.Counts = counts
	if err := checkRestored(ctx, d.dir, &rm, d.stdout, d.stderr); err != nil {
		return "audit and counts against the manifest", err
	}
	types, err := typeCounts(ctx, filepath.Join(d.dir, sqlite.FileName))
	if err != nil {
		return "count types", err
	}
	return d.serveAndQuery(ctx, &rm, types, start)
}

// serveAndQuery starts the server on the restored directory (loopback,
// an ephemeral port, the serve code path) and runs the smoke queries with
// an operator token.
func (d *drill) serveAndQuery(ctx context.Context, m *backup.Manifest, types map[string]int64, start time.Time) (string, error) {
	sctx, stop := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(serveOptions{data: d.dir, listen: "127.0.0.1:0", logLevel: "error", stop: sctx,
			ready: func(u string) { ready <- u }}, d.stderr)
	}()
	defer func() {
		stop()
		<-done
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		done <- err // for the deferred wait
		return "start the server", err
	case <-time.After(2 * time.Minute):
		return "start the server", errors.New("not listening after 2 minutes")
	}
	var tok bytes.Buffer
	if err := runToken([]string{"--data", d.dir, "--role", "operator", "--user", "restore-drill", "--ttl", "15m"}, &tok, d.stderr); err != nil {
		return "mint an operator token", err
	}
	c, err := drillClient(filepath.Join(d.dir, tlsDirName, "cert.pem"))
	if err != nil {
		return "TLS", err
	}
	q := &drillQuery{c: c, base: base + "/fhir/", token: strings.TrimSpace(tok.String())}
	var meta struct{ ResourceType string }
	if err := q.get(ctx, "metadata", &meta); err != nil || meta.ResourceType != "CapabilityStatement" {
		return "metadata", fmt.Errorf("no CapabilityStatement: %v", err)
	}
	d.rto = time.Since(start)
	// A search per type: each total must equal the snapshot's count of
	// that type where the manifest has one, and they must add up to its
	// count of resources.
	names := make([]string, 0, len(types))
	for t := range types {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		var b struct{ Total *int64 }
		if err := q.get(ctx, t+"?_summary=count", &b); err != nil || b.Total == nil {
			return "search " + t, fmt.Errorf("no total: %v", err)
		}
		if want, ok := m.Counts["resources/"+t]; ok && *b.Total != want {
			return "search " + t, fmt.Errorf("found %d, the snapshot holds %d", *b.Total, want)
		}
		d.searched += *b.Total
	}
	if want, ok := m.Counts["resources"]; ok && d.searched != want {
		return "search counts", fmt.Errorf("the searches found %d resources, the snapshot holds %d", d.searched, want)
	}
	if types["Patient"] > 0 {
		var b struct {
			Entry []struct{ Resource struct{ ID string } }
		}
		if err := q.get(ctx, "Patient?_count=1", &b); err != nil || len(b.Entry) == 0 {
			return "search Patient", fmt.Errorf("no patient returned: %v", err)
		}
		var p struct{ ResourceType, ID string }
		if err := q.get(ctx, "Patient/"+url.PathEscape(b.Entry[0].Resource.ID), &p); err != nil || p.ResourceType != "Patient" || p.ID != b.Entry[0].Resource.ID {
			return "read Patient", fmt.Errorf("the patient found by search does not read back: %v", err)
		}
	}
	fmt.Fprintf(d.stdout, "smoke queries over HTTPS at %s: metadata, %d type searches, a patient read\n", base, len(names))
	return "", nil
}

// typeCounts counts the current, undeleted resources of each type.
func typeCounts(ctx context.Context, path string) (map[string]int64, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT rtype, count(*) FROM current WHERE deleted = 0 GROUP BY rtype")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var t string
		var n int64
		if err := rows.Scan(&t, &n); err != nil {
			return nil, err
		}
		out[t] = n
	}
	return out, rows.Err()
}

// drillClient trusts only the restored directory's own certificate.
func drillClient(certPEM string) (*http.Client, error) {
	pem, err := os.ReadFile(certPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificate in " + certPEM)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true}
	return &http.Client{Transport: tr, Timeout: time.Minute}, nil
}

type drillQuery struct {
	c           *http.Client
	base, token string
}

// get fetches rel with the token and decodes a 200 JSON body into out.
func (q *drillQuery) get(ctx context.Context, rel string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, q.base+rel, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+q.token)
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := q.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode) // the body may name resources: not printed
	}
	return json.Unmarshal(b, out)
}
