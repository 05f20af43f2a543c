//go:build benchplainindex

package main

import (
	"fmt"
	"io"
)

// This binary was built with the benchmark-only tag benchplainindex: its
// search index tokens are plaintext (internal/barrier/token_plain.go). It
// exists to measure the cost of the blind index and must never hold patient
// data or be mistaken for a product, so every command that creates or
// serves a data directory says so loudly, and so does 'phivault version'.

const plainIndexWarning = `
################################################################################
#  WARNING: BENCHMARK-ONLY BUILD (tag benchplainindex): PLAINTEXT SEARCH INDEX  #
#  Search index entries are stored in PLAINTEXT, not as keyed blind tokens.     #
#  Never put patient data in it, never ship it, and never serve a data          #
#  directory it wrote with a product build (its index would not match).         #
################################################################################
`

func init() {
	version += " (benchmark-only build: plaintext index)"
	for _, name := range []string{"init", "serve", "demo", "import"} {
		c, ok := commands[name]
		if !ok {
			continue
		}
		run := c.run
		c.run = func(args []string, stdout, stderr io.Writer) error {
			fmt.Fprint(stderr, plainIndexWarning)
			return run(args, stdout, stderr)
		}
		commands[name] = c
	}
}
