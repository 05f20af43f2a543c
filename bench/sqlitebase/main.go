// Command sqlitebase is the storage-limit baseline for bench/load: the same
// workloads written straight into SQLite (pure-Go modernc.org/sqlite, WAL,
// synchronous=FULL, so a write is durable when it returns, as phivault's
// are) by the same number of concurrent clients, through the same
// measuring loop (bench/internal/loadgen) and with the same bodies.
//
// Each resource is one row (type, id, version, JSON body) under a primary
// key: no encryption, compression, index tokens, history, validation,
// audit or HTTP. Writes go through one writer connection, as SQLite allows
// one writer at a time; -commit chooses how:
//
//	each   one transaction, so one WAL fsync, per operation (a bundle's
//	       rows share one transaction)
//	group  a writer goroutine commits whatever operations are waiting
//	       (up to 256) in one transaction, as phivault's store does
//
// Reads use a pool of read-only connections, one per client.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite"

	"github.com/phivault/phivault/bench/internal/loadgen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sqlitebase:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		dir       = flag.String("dir", "", "directory for the database (default: a new temporary directory, removed after)")
		clients   = flag.String("clients", "16,64", "concurrent clients, a comma-separated list")
		workloads = flag.String("workload", "read,create,update,transaction", "workloads: read, create, update, transaction")
		commits   = flag.String("commit", "each,group", "commit modes: each, group")
		rows      = flag.Int("rows", 4000, "Patients and Observations (each) preloaded for read and update")
		seed      = flag.Int64("seed", 1, "seed of the synthetic population")
		txFirst   = flag.Int("tx-first", 1_000_000, "first synthetic patient of the transaction workload")
		txPool    = flag.Int("tx-bundles", 256, "distinct transaction bundles (reused round robin)")
		jsonOut   = flag.String("json", "", "append results as JSON lines to this file")
		round     = flag.Int("round", 0, "round number recorded with the results")
		l         loadgen.Limits
	)
	flag.DurationVar(&l.Duration, "duration", 20*time.Second, "measure each point for this long")
	flag.Int64Var(&l.MaxOps, "max-requests", 1_000_000, "and for at most this many operations")
	flag.DurationVar(&l.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before each point")
	flag.Parse()

	cl, err := loadgen.ParseInts(*clients)
	if err != nil {
		return fmt.Errorf("-clients: %v", err)
	}
	maxClients := 0
	for _, n := range cl {
		maxClients = max(maxClients, n)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "sqlitebase-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	} else if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	var bundles []loadgen.Bundle
	var results []loadgen.Result
	for _, mode := range loadgen.ParseList(*commits) {
		if mode != "each" && mode != "group" {
			return fmt.Errorf("unknown commit mode %q (each or group)", mode)
		}
		db, err := open(filepath.Join(*dir, "baseline-"+mode+".db"), mode, maxClients)
		if err != nil {
			return err
		}
		if err := db.preload(*rows); err != nil {
			return err
		}
		for _, w := range loadgen.ParseList(*workloads) {
			if w == "transaction" && bundles == nil {
				bundles = loadgen.SynthBundles(*seed, *txFirst, *txPool)
			}
			op, err := db.workload(w, maxClients, bundles)
			if err != nil {
				return err
			}
			for _, n := range cl {
				if w == "read" && mode != loadgen.ParseList(*commits)[0] {
					continue // reads do not depend on the commit mode
				}
				lim := l
				lim.Clients = n
				db.bytes.Store(0)
				db.calls.Store(0)
				r := loadgen.Run(context.Background(), lim, op)
				r.Target, r.Workload, r.Round = "sqlite-"+mode, w, *round
				if w == "read" {
					r.Target = "sqlite"
				}
				if c := db.calls.Load(); c > 0 {
					r.ReqBytes = float64(db.bytes.Load()) / float64(c)
				}
				fmt.Fprintf(os.Stderr, "%-12s %-11s clients=%-3d %9s ops/s %9s resources/s  p50 %7.2f ms  p99 %7.2f ms  errors %d  CPU %3.0f%%\n",
					r.Target, w, n, loadgen.Num(r.OpsPerSec), loadgen.Num(r.ItemsPerSec), r.P50ms, r.P99ms, r.Errors, r.ToolCPUPct)
				if r.FirstError != "" {
					fmt.Fprintf(os.Stderr, "  first error: %s\n", r.FirstError)
				}
				if err := loadgen.WriteJSON(*jsonOut, r); err != nil {
					return err
				}
				results = append(results, r)
			}
		}
		db.close()
	}
	loadgen.TableHeader(os.Stdout)
	for _, r := range results {
		loadgen.Row(os.Stdout, r)
	}
	return nil
}

// dsn matches the pragmas of phivault's own SQLite store.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		q.Add("_pragma", "cache_size(-32768)")
	} else {
		q.Add("_pragma", "cache_size(-262144)")
	}
	return "file:" + path + "?" + q.Encode()
}

type row struct {
	typ, id string
	body    []byte
	update  bool
}

// write is one operation's rows, committed together.
type write struct {
	rows []row
	done chan error
}

type baseDB struct {
	w, r  *sql.DB
	group bool
	queue chan *write
	stop  chan struct{}

	obsIDs, patIDs []string
	next           atomic.Int64 // fresh ids
	bytes, calls   atomic.Int64
}

func open(path, mode string, readers int) (*baseDB, error) {
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	var jm string
	if err := w.QueryRow("PRAGMA journal_mode=WAL").Scan(&jm); err != nil || jm != "wal" {
		return nil, fmt.Errorf("enable WAL (mode %q): %v", jm, err)
	}
	if _, err := w.Exec(`CREATE TABLE IF NOT EXISTS res (rtype TEXT NOT NULL, rid TEXT NOT NULL, vid INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (rtype, rid))`); err != nil {
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, err
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	db := &baseDB{w: w, r: r, group: mode == "group", queue: make(chan *write, 256), stop: make(chan struct{})}
	if db.group {
		go db.writeLoop()
	}
	return db, nil
}

func (db *baseDB) close() {
	if db.group {
		close(db.stop)
	}
	db.w.Close()
	db.r.Close()
}

// commit writes the rows of several operations in one transaction.
func (db *baseDB) commit(ws []*write) error {
	tx, err := db.w.Begin()
	if err != nil {
		return err
	}
	ins, err := tx.Prepare(`INSERT INTO res (rtype, rid, vid, body) VALUES (?, ?, 1, ?)`)
	if err != nil {
		tx.Rollback()
		return err
	}
	upd, err := tx.Prepare(`UPDATE res SET vid = vid + 1, body = ? WHERE rtype = ? AND rid = ?`)
	if err != nil {
		tx.Rollback()
		return err
	}
	for _, w := range ws {
		for _, r := range w.rows {
			if r.update {
				res, err := upd.Exec(r.body, r.typ, r.id)
				if err != nil {
					tx.Rollback()
					return err
				}
				if n, _ := res.RowsAffected(); n != 1 {
					tx.Rollback()
					return errors.New("update: no such row")
				}
			} else if _, err := ins.Exec(r.typ, r.id, r.body); err != nil {
				tx.Rollback()
				return err
			}
		}
	}
	return tx.Commit()
}

// put makes one operation's rows durable.
func (db *baseDB) put(rows ...row) error {
	for _, r := range rows {
		db.bytes.Add(int64(len(r.body)))
	}
	db.calls.Add(1)
	w := &write{rows: rows}
	if !db.group {
		return db.commit([]*write{w})
	}
	w.done = make(chan error, 1)
	db.queue <- w
	return <-w.done
}

// writeLoop is group commit: one transaction for every waiting write.
func (db *baseDB) writeLoop() {
	for {
		var batch []*write
		select {
		case w := <-db.queue:
			batch = append(batch, w)
		case <-db.stop:
			return
		}
	drain:
		for len(batch) < 256 {
			select {
			case w := <-db.queue:
				batch = append(batch, w)
			default:
				break drain
			}
		}
		err := db.commit(batch)
		for _, w := range batch {
			w.done <- err
		}
	}
}

func (db *baseDB) freshID() string { return fmt.Sprintf("b%012d", db.next.Add(1)) }

// preload writes n Patients and n Observations in one transaction.
func (db *baseDB) preload(n int) error {
	r := rand.New(rand.NewPCG(7, 7))
	var rows []row
	for range n {
		p := db.freshID()
		db.patIDs = append(db.patIDs, p)
		rows = append(rows, row{typ: "Patient", id: p, body: loadgen.Patient(r)})
		o := db.freshID()
		db.obsIDs = append(db.obsIDs, o)
		rows = append(rows, row{typ: "Observation", id: o, body: loadgen.Observation(r, p)})
	}
	return db.commit([]*write{{rows: rows}})
}

func rands(n int, stream uint64) []*rand.Rand {
	out := make([]*rand.Rand, n)
	for i := range out {
		out[i] = rand.New(rand.NewPCG(uint64(i)+1, stream))
	}
	return out
}

func (db *baseDB) workload(w string, maxClients int, bundles []loadgen.Bundle) (loadgen.Op, error) {
	switch w {
	case "read":
		rngs := rands(maxClients, 1)
		stmt, err := db.r.Prepare(`SELECT body FROM res WHERE rtype = ? AND rid = ?`)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, c, seq int) (int, error) {
			r := rngs[c]
			typ, id := "Patient", db.patIDs[r.IntN(len(db.patIDs))]
			if r.IntN(2) == 0 {
				typ, id = "Observation", db.obsIDs[r.IntN(len(db.obsIDs))]
			}
			var body []byte
			if err := stmt.QueryRowContext(ctx, typ, id).Scan(&body); err != nil {
				return 0, err
			}
			db.bytes.Add(int64(len(body)))
			db.calls.Add(1)
			return 1, nil
		}, nil
	case "create":
		rngs := rands(maxClients, 2)
		return func(ctx context.Context, c, seq int) (int, error) {
			r := rngs[c]
			body := loadgen.Observation(r, db.patIDs[r.IntN(len(db.patIDs))])
			return 1, db.put(row{typ: "Observation", id: db.freshID(), body: body})
		}, nil
	case "update":
		if len(db.obsIDs) < maxClients {
			return nil, fmt.Errorf("update needs -rows >= %d", maxClients)
		}
		rngs := rands(maxClients, 3)
		per := max(len(db.obsIDs)/maxClients, 1)
		return func(ctx context.Context, c, seq int) (int, error) {
			i := min(c+maxClients*(seq%per), len(db.obsIDs)-1) // each client its own rows
			r := rngs[c]
			body := loadgen.Observation(r, db.patIDs[r.IntN(len(db.patIDs))])
			return 1, db.put(row{typ: "Observation", id: db.obsIDs[i], body: body, update: true})
		}, nil
	case "transaction":
		var next atomic.Int64
		return func(ctx context.Context, c, seq int) (int, error) {
			b := bundles[int(next.Add(1)-1)%len(bundles)]
			rows := make([]row, len(b.Resources))
			for i, res := range b.Resources {
				rows[i] = row{typ: res.Type, id: db.freshID(), body: res.Body}
			}
			return len(rows), db.put(rows...)
		}, nil
	}
	return nil, fmt.Errorf("unknown workload %q (read, create, update, transaction)", w)
}
