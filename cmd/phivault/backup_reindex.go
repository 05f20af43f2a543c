package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/phivault/phivault/internal/backup"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// rebuildRestored turns a restored snapshot's dump (DIR/db) into the
// node's database: loadDump, then the blind index rebuilt by
// reindexRestored, then the dump removed. It returns the manifest's counts
// adjusted for what cannot be rebuilt (index entries of erased resources,
// whose data key is destroyed: they are gone with the key). A snapshot made
// before the dump format (a page copy of phivault.db) is left as restored.
func rebuildRestored(ctx context.Context, dir string, m *backup.Manifest, stdout, stderr io.Writer) (map[string]int64, error) {
	counts := make(map[string]int64, len(m.Counts))
	for k, v := range m.Counts {
		counts[k] = v
	}
	dumpPath := filepath.Join(dir, dumpDir)
	if _, err := os.Stat(filepath.Join(dumpPath, factsName)); errors.Is(err, os.ErrNotExist) {
		return counts, nil
	}
	bad := func(what string, err error) error {
		return fail(exitFail, "the snapshot's database could not be rebuilt: "+what+": "+err.Error(),
			"do not use "+dir+"; run 'phivault backup verify --read-data' and restore with the phivault version that took the snapshot")
	}
	if _, err := loadDump(ctx, dumpPath, dir); err != nil {
		return nil, bad("load", err)
	}
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), stderr)
	if err != nil {
		return nil, err
	}
	rep, err := reindexRestored(ctx, n, dir, filepath.Join(dumpPath, "index"))
	n.close()
	if err != nil {
		return nil, bad("index", err)
	}
	if err := os.RemoveAll(dumpPath); err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "index: %d entries of %d resources rebuilt", rep.tokens, rep.indexed)
	if rep.erased > 0 {
		fmt.Fprintf(stdout, "; %d erased resources not indexed (their data key is destroyed)", rep.erased)
	}
	fmt.Fprintln(stdout)
	counts["tokens"] -= rep.missing
	return counts, nil
}

// reindexReport says what reindexRestored did.
type reindexReport struct {
	indexed int64 // resources whose tokens were rebuilt and matched
	tokens  int64 // index entries written
	erased  int64 // resources whose data key is destroyed
	missing int64 // index entries the backup had for erased resources
}

// reindexJob is one current, non-deleted resource to index.
type reindexJob struct {
	typ, id string
	want    [8]byte
	count   uint64
	tokens  [][]byte
	erased  bool
	err     error
}

// reindexRestored fills the empty index of the restored store opened as n:
// every current, non-deleted version is decrypted through records (in
// memory, never written in plaintext), indexed by the search engine, and
// its tokens checked against db/index (count and digest) before they are
// written. Resources of destroyed keys are counted, not indexed. Any other
// difference fails: the index would answer searches differently from the
// store that was backed up (e.g. a phivault version that indexes
// differently).
func reindexRestored(ctx context.Context, n *node, dir, indexDump string) (*reindexReport, error) {
	dbPath := filepath.Join(dir, sqlite.FileName)
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	jobs, err := indexJobs(ctx, db, indexDump)
	if err != nil {
		return nil, err
	}
	// idx is keyed by token: rows written as resources come would land at
	// random places (half-full pages, a page read and written per row).
	// They go into a scratch table first and into idx in one sorted pass
	// at the end, which appends. The scratch table is TEMP (in a file of
	// its own, gone with the connection), so the store's file holds only
	// the packed index; one connection holds it throughout.
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TEMP TABLE idx_load (token BLOB NOT NULL, rtype TEXT NOT NULL, rid TEXT NOT NULL)`); err != nil {
		return nil, err
	}
	// Decrypting and indexing is the cost: each batch is spread over the
	// CPUs, and written (in order, checked) while the next is indexed.
	workers := runtime.GOMAXPROCS(0)
	rep := &reindexReport{}
	const batch = 1024
	var mismatched []string
	var nMismatched int
	written := make(chan []reindexJob, 1)
	writeErr := make(chan error, 1)
	go func() {
		var err error
		for b := range written {
			if err == nil {
				err = writeIndexBatch(ctx, conn, b, rep, &mismatched, &nMismatched)
			}
			for i := range b {
				b[i].tokens = nil
			}
		}
		writeErr <- err
	}()
	for start := 0; start < len(jobs); start += batch {
		end := min(start+batch, len(jobs))
		next := make(chan int)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					indexOne(ctx, n, &jobs[i])
				}
			}()
		}
		for i := start; i < end; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		written <- jobs[start:end]
	}
	close(written)
	if err := <-writeErr; err != nil {
		return nil, err
	}
	if nMismatched > 0 {
		return nil, fmt.Errorf("the rebuilt index differs from the backed-up one for %d resources (first: %v)", nMismatched, mismatched)
	}
	for _, q := range []string{
		`INSERT INTO main.idx (token, rtype, rid) SELECT token, rtype, rid FROM temp.idx_load ORDER BY token, rtype, rid`,
		`DROP TABLE temp.idx_load`,
		sqlite.FillTokset,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("rebuild the index: %w", err)
		}
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return nil, err
	}
	return rep, nil
}

// indexJobs lists the restored store's current, non-deleted resources in
// key order with what db/index says of each; deleted ones must have no
// tokens there.
func indexJobs(ctx context.Context, db *sql.DB, indexDump string) ([]reindexJob, error) {
	d, err := openDump(indexDump, "index")
	if err != nil {
		return nil, err
	}
	defer d.close()
	rows, err := db.QueryContext(ctx, "SELECT rtype, rid, deleted FROM current ORDER BY rtype, rid")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []reindexJob
	for rows.Next() {
		var j reindexJob
		var deleted bool
		if err := rows.Scan(&j.typ, &j.id, &deleted); err != nil {
			return nil, err
		}
		if !d.more() {
			return nil, errors.New("db/index lists fewer resources than the store holds")
		}
		count, err := d.uint()
		if err != nil {
			return nil, fmt.Errorf("db/index: %w", err)
		}
		want, err := d.raw(8)
		if err != nil {
			return nil, fmt.Errorf("db/index: %w", err)
		}
		j.count, j.want = count, [8]byte(want)
		if deleted {
			if count != 0 {
				return nil, fmt.Errorf("db/index gives the deleted resource %s/%s %d index entries", j.typ, j.id, count)
			}
			continue
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if d.more() {
		return nil, errors.New("db/index lists more resources than the store holds")
	}
	return jobs, nil
}

// indexOne decrypts and indexes one resource into j.
func indexOne(ctx context.Context, n *node, j *reindexJob) {
	e, err := n.records.Read(ctx, j.typ, j.id)
	if errors.Is(err, barrier.ErrKeyDestroyed) {
		j.erased = true
		return
	}
	if err != nil {
		j.err = err
		return
	}
	dec := json.NewDecoder(bytes.NewReader(e.Body))
	dec.UseNumber() // as the API and the importer decode what they index
	var res map[string]any
	if err := dec.Decode(&res); err != nil {
		j.err = fmt.Errorf("%s/%s: stored body is not JSON", j.typ, j.id)
		return
	}
	toks, _, err := n.search.IndexStored(res)
	if err != nil {
		j.err = err
		return
	}
	j.tokens = make([][]byte, len(toks))
	for i, t := range toks {
		j.tokens[i] = []byte(t)
	}
}

// tokenRows is how many index rows one INSERT statement writes.
const tokenRows = 256

var tokenInsert = "INSERT INTO temp.idx_load (rtype, rid, token) VALUES (?, ?, ?)" + strings.Repeat(", (?, ?, ?)", tokenRows-1)

// writeIndexBatch checks a batch of indexed jobs against db/index and
// writes their tokens into the scratch table idx_load in one transaction,
// tokenRows rows a statement.
func writeIndexBatch(ctx context.Context, conn *sql.Conn, jobs []reindexJob, rep *reindexReport, mismatched *[]string, nMismatched *int) error {
	var args []any // rtype, rid, token of each row
	for i := range jobs {
		j := &jobs[i]
		switch {
		case j.err != nil:
			return j.err
		case j.erased:
			rep.erased++
			rep.missing += int64(j.count)
			continue
		case uint64(len(j.tokens)) != j.count || tokenDigest(j.tokens) != j.want:
			*nMismatched++
			if len(*mismatched) < 3 {
				*mismatched = append(*mismatched, j.typ+"/"+j.id)
			}
			continue
		}
		for _, t := range j.tokens {
			args = append(args, j.typ, j.id, t)
		}
		rep.indexed++
		rep.tokens += int64(len(j.tokens))
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	full, err := tx.PrepareContext(ctx, tokenInsert)
	if err != nil {
		return err
	}
	defer full.Close()
	for len(args) > 0 {
		n := min(len(args), 3*tokenRows)
		if n == 3*tokenRows {
			_, err = full.ExecContext(ctx, args[:n]...)
		} else {
			_, err = tx.ExecContext(ctx, tokenInsert[:strings.Index(tokenInsert, "VALUES")]+"VALUES (?, ?, ?)"+strings.Repeat(", (?, ?, ?)", n/3-1), args[:n]...)
		}
		if err != nil {
			return err
		}
		args = args[n:]
	}
	return tx.Commit()
}
