package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/fhirapi"
)

// TestReindexCommand: a custom SearchParameter imported into a store finds
// the Observations imported before it only after 'phivault reindex'; the
// command reports what it did and what is complete, and refuses bad flags
// with a one-line error and a hint, changing nothing.
func TestReindexCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	cli := func(want int, args ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != want {
			t.Fatalf("phivault %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	cli(exitOK, "init", "--data", dir, "--dev-key")
	obs := filepath.Join(t.TempDir(), "obs.ndjson")
	sp := filepath.Join(t.TempDir(), "sp.ndjson")
	write := func(path, body string) {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(obs, `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"bodySite":{"coding":[{"system":"http://snomed.info/sct","code":"368209003"}]}}
{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},"bodySite":{"coding":[{"system":"http://snomed.info/sct","code":"40983000"}]}}
`)
	write(sp, `{"resourceType":"SearchParameter","id":"body-site","url":"http://example.org/sp/body-site","name":"BodySite","status":"active","description":"body site","code":"body-site","base":["Observation"],"type":"token","expression":"Observation.bodySite"}
`)
	cli(exitOK, "import", "--data", dir, obs)
	cli(exitOK, "import", "--data", dir, sp)

	found := func() []string {
		t.Helper()
		n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer n.close()
		page, err := n.search.Search(context.Background(), fhirapi.SearchRequest{Type: "Observation",
			Query: url.Values{"body-site": {"http://snomed.info/sct|368209003"}}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Matches {
			ids = append(ids, m.ID)
		}
		return ids
	}
	if ids := found(); len(ids) != 0 {
		t.Fatalf("before the reindex the new parameter found %v (imported before it: not indexed yet)", ids)
	}

	_, stderr := cli(exitUsage, "reindex", "--data", dir, "--type", "Observaton")
	if !strings.Contains(stderr, `"Observaton" is not a FHIR R4 resource type`) || !strings.Contains(stderr, "hint: ") {
		t.Errorf("bad --type: %q", stderr)
	}
	cli(exitUsage, "reindex")

	out, _ := cli(exitOK, "reindex", "--data", dir, "--type", "Observation")
	if !strings.HasPrefix(out, "reindexed 2 resources of 1 types") || !strings.Contains(out, "custom parameter body-site (SearchParameter/body-site): complete for Observation") {
		t.Errorf("reindex said %q", out)
	}
	if ids := found(); len(ids) != 1 || ids[0] != "o1" {
		t.Errorf("after the reindex: %v, want [o1]", ids)
	}
}
