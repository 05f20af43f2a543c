package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// benchWrite is one benchmark write: a new resource with a ~1 KiB body and
// 10 tokens.
type benchWrite struct {
	id     string
	body   []byte
	tokens []store.Token
}

func makeWrite(n int64) benchWrite {
	w := benchWrite{id: fmt.Sprintf("res-%09d", n), body: make([]byte, 1024)}
	seed := sha256.Sum256(fmt.Appendf(nil, "%d", n))
	for i := 0; i < len(w.body); i += len(seed) {
		copy(w.body[i:], seed[:])
		seed = sha256.Sum256(seed[:])
	}
	for k := range 10 {
		t := sha256.Sum256(fmt.Appendf(nil, "param%d=%d", k, n%int64(10*(k+1))))
		w.tokens = append(w.tokens, t[:])
	}
	return w
}

// runWriters performs total writes with the given number of goroutines and
// returns the elapsed time.
func runWriters(b *testing.B, writers, total int, write func(benchWrite) error) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > int64(total) {
					return
				}
				if err := write(makeWrite(n)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkUpdate measures Update throughput with group commit and, in the
// same run, the same writes straight into SQLite with one transaction per
// write (same schema, same statements, synchronous=FULL), and reports the
// ratio as speedup-x.
func BenchmarkUpdate(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			be, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			b.ResetTimer()
			group := runWriters(b, writers, b.N, func(w benchWrite) error {
				return be.Update(context.Background(), func(tx store.Writer) error {
					_, err := tx.Put(store.Version{Type: "Observation", ID: w.id, VID: 1, Updated: time.Now(), Body: w.body}, w.tokens)
					return err
				})
			})
			b.StopTimer()
			st := be.Stats()

			base := openBaseline(b)
			defer base.Close()
			single := runWriters(b, writers, b.N, base.write)

			b.ReportMetric(float64(b.N)/group.Seconds(), "writes/s")
			b.ReportMetric(float64(b.N)/single.Seconds(), "baseline-writes/s")
			b.ReportMetric(single.Seconds()/group.Seconds(), "speedup-x")
			b.ReportMetric(float64(st.Updates)/float64(max(st.Commits, 1)), "writes/commit")
		})
	}
}

// baseline writes straight into SQLite, one transaction (one fsync) per
// write, through one connection as any single-writer SQLite program must.
type baseline struct {
	db    *sql.DB
	stmts []*sql.Stmt
}

func openBaseline(b *testing.B) *baseline {
	db, err := sql.Open("sqlite", dsn(b.TempDir()+"/baseline.db", false))
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "PRAGMA journal_mode=WAL"); err != nil {
		b.Fatal(err)
	}
	if err := migrate(ctx, c); err != nil {
		b.Fatal(err)
	}
	c.Close()
	bl := &baseline{db: db}
	for _, q := range []string{
		`SELECT count(*) FROM current WHERE rtype = ? AND rid = ?`,
		`INSERT INTO versions (rtype, rid, vid, updated, deleted, body) VALUES (?, ?, 1, ?, 0, ?)`,
		`INSERT INTO current (rtype, rid, vid, seq, deleted) VALUES (?, ?, 1, ?, 0)`,
		`INSERT OR IGNORE INTO idx (token, rtype, rid) VALUES (?, ?, ?)`,
	} {
		s, err := db.Prepare(q)
		if err != nil {
			b.Fatal(err)
		}
		bl.stmts = append(bl.stmts, s)
	}
	return bl
}

func (bl *baseline) Close() error { return bl.db.Close() }

func (bl *baseline) write(w benchWrite) error {
	tx, err := bl.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.Stmt(bl.stmts[0]).QueryRow("Observation", w.id).Scan(&n); err != nil || n != 0 {
		return fmt.Errorf("baseline: exists %d: %v", n, err)
	}
	res, err := tx.Stmt(bl.stmts[1]).Exec("Observation", w.id, time.Now().UnixMicro(), w.body)
	if err != nil {
		return err
	}
	seq, _ := res.LastInsertId()
	if _, err := tx.Stmt(bl.stmts[2]).Exec("Observation", w.id, seq); err != nil {
		return err
	}
	for _, t := range w.tokens {
		if _, err := tx.Stmt(bl.stmts[3]).Exec([]byte(t), "Observation", w.id); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// load writes n Patient resources in Updates of 1000. Resource i carries
// the tokens g:i%2, c:i%100, s:i%4 and a unique one.
func load(b testing.TB, be *Backend, n int) {
	body := make([]byte, 512)
	for start := 0; start < n; start += 1000 {
		err := be.Update(context.Background(), func(w store.Writer) error {
			for i := start; i < min(start+1000, n); i++ {
				tokens := []store.Token{
					fmt.Appendf(nil, "g:%d", i%2), fmt.Appendf(nil, "c:%d", i%100),
					fmt.Appendf(nil, "s:%d", i%4), fmt.Appendf(nil, "id:%d", i),
				}
				v := store.Version{Type: "Patient", ID: fmt.Sprintf("p%07d", i), VID: 1, Updated: time.Now(), Body: body}
				if _, err := w.Put(v, tokens); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCurrent measures parallel point reads (View + Current).
func BenchmarkCurrent(b *testing.B) {
	be, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	const n = 10000
	load(b, be, n)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("p%07d", rand.IntN(n))
			err := be.View(context.Background(), func(r store.Reader) error {
				_, err := r.Current("Patient", id)
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// BenchmarkMatch runs 2-group queries over 100k resources: a selective one
// (g:1 AND (c:7 OR c:13), 1000 hits) and a broad one (g:1 AND (s:1 OR
// s:3), 50k hits), each as a first page of 50 and as a Count.
func BenchmarkMatch(b *testing.B) {
	be, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	start := time.Now()
	load(b, be, 100000)
	b.Logf("loaded 100k resources in %v", time.Since(start))
	queries := map[string][][]store.Token{
		"selective": {{store.Token("g:1")}, {store.Token("c:7"), store.Token("c:13")}},
		"broad":     {{store.Token("g:1")}, {store.Token("s:1"), store.Token("s:3")}},
	}
	for _, name := range []string{"selective", "broad"} {
		q := store.MatchQuery{Type: "Patient", All: queries[name], Limit: 50}
		b.Run(name+"/page50", func(b *testing.B) {
			for b.Loop() {
				err := be.View(context.Background(), func(r store.Reader) error {
					ids, err := r.Match(q)
					if err == nil && len(ids) != 50 {
						err = fmt.Errorf("%d ids", len(ids))
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/count", func(b *testing.B) {
			for b.Loop() {
				err := be.View(context.Background(), func(r store.Reader) error {
					_, err := r.Count(q)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCurrentWhileCommitting measures parallel point reads with no
// writer and while another goroutine commits audit appends back to back,
// as the server does under reads (each read's audit record is a commit),
// each way side by side: Current in a View of its own, and ReadCurrent
// (the version cache). SQLite empties a read connection's page cache at
// the start of every read transaction that follows a commit, so under
// commits every View reads its pages again (from the OS cache, one pread
// each).
func BenchmarkCurrentWhileCommitting(b *testing.B) {
	for _, committing := range []bool{false, true} {
		for _, path := range []string{"view", "cache"} {
			b.Run(fmt.Sprintf("committing=%v/read=%s", committing, path), func(b *testing.B) {
				benchCurrent(b, committing, path == "cache")
			})
		}
	}
}

func benchCurrent(b *testing.B, committing, cached bool) {
	be, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	const n = 20000
	load(b, be, n)
	stop := make(chan struct{})
	var commits atomic.Int64
	var wg sync.WaitGroup
	if committing {
		wg.Go(func() {
			leaf := make([]byte, 1024)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := be.Update(context.Background(), func(w store.Writer) error {
					_, err := w.AppendAudit(leaf)
					return err
				}); err != nil {
					b.Error(err)
					return
				}
				commits.Add(1)
			}
		})
	}
	read := func(id string) (store.Version, error) {
		if cached {
			vs, err := be.ReadCurrent(context.Background(), "Patient", []string{id})
			if err == nil && len(vs) != 1 {
				err = store.ErrNotFound
			}
			if err != nil {
				return store.Version{}, err
			}
			return vs[0], nil
		}
		var v store.Version
		err := be.View(context.Background(), func(r store.Reader) error {
			var err error
			v, err = r.Current("Patient", id)
			return err
		})
		return v, err
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("p%07d", rand.IntN(n))
			v, err := read(id)
			if err == nil && len(v.Body) != 512 {
				err = fmt.Errorf("%s: body of %d bytes", id, len(v.Body))
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
	b.ReportMetric(float64(commits.Load())/b.Elapsed().Seconds(), "commits/s")
}
