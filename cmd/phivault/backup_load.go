package main

// Loading a dump (backup_dump.go) back into a SQLite store: on restore, and
// on backup into a scratch store to prove the dump loads before it is
// stored as good.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/phivault/phivault/internal/store/sqlite"
)

// dumpReader reads one dump file written by dumpWriter.
type dumpReader struct {
	f *os.File
	r *bufio.Reader
}

func openDump(path, table string) (*dumpReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	head, err := r.ReadString('\n')
	if err != nil || head != dumpFormat+" "+table+"\n" {
		f.Close()
		return nil, fmt.Errorf("%s: not a %s dump of %s", filepath.Base(path), dumpFormat, table)
	}
	return &dumpReader{f: f, r: r}, nil
}

// more reports whether another record follows.
func (d *dumpReader) more() bool {
	_, err := d.r.Peek(1)
	return err == nil
}

func (d *dumpReader) uint() (uint64, error) { return binary.ReadUvarint(d.r) }
func (d *dumpReader) int() (int64, error)   { return binary.ReadVarint(d.r) }

func (d *dumpReader) bytes() ([]byte, error) {
	n, err := d.uint()
	if err != nil {
		return nil, err
	}
	if n > 1<<30 {
		return nil, errors.New("record too large")
	}
	b := make([]byte, n)
	_, err = io.ReadFull(d.r, b)
	return b, err
}

func (d *dumpReader) raw(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(d.r, b)
	return b, err
}

func (d *dumpReader) close() { d.f.Close() }

// readFacts reads db/facts.json of a dump in dir.
func readFacts(dir string) (*dumpFacts, error) {
	b, err := os.ReadFile(filepath.Join(dir, factsName))
	if err != nil {
		return nil, err
	}
	var f dumpFacts
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %v", factsName, err)
	}
	if f.Format != dumpFormat {
		return nil, fmt.Errorf("%s: format %q, this phivault reads %q", factsName, f.Format, dumpFormat)
	}
	return &f, nil
}

// loadDump builds DIR/phivault.db from the dump in dumpPath: the schema of
// this binary (which must be the dump's), the dumped rows, and current
// rebuilt from versions and checked against the dump's digest. The index
// stays empty (reindexRestored fills it). DIR must hold no database.
func loadDump(ctx context.Context, dumpPath, dir string) (*dumpFacts, error) {
	facts, err := readFacts(dumpPath)
	if err != nil {
		return nil, err
	}
	dbPath := filepath.Join(dir, sqlite.FileName)
	if _, err := os.Stat(dbPath); err == nil {
		return nil, fmt.Errorf("%s exists already", dbPath)
	}
	st, err := sqlite.Open(dir, sqlite.WithReaders(1)) // creates this binary's schema
	if err != nil {
		return nil, err
	}
	if err := st.Close(); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var schema int
	if err := c.QueryRowContext(ctx, "SELECT version FROM schema_version").Scan(&schema); err != nil {
		return nil, err
	}
	if schema != facts.Schema && !sameDump[[2]int{facts.Schema, schema}] {
		return nil, fmt.Errorf("the snapshot holds store schema %d, this phivault writes schema %d: restore with the phivault version that took the snapshot", facts.Schema, schema)
	}
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			c.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if err := loadRows(ctx, c, dumpPath, facts); err != nil {
		return nil, err
	}
	if _, err := c.ExecContext(ctx, `INSERT INTO current (rtype, rid, vid, seq, deleted)
		SELECT rtype, rid, max(vid), seq, deleted FROM versions GROUP BY rtype, rid`); err != nil {
		return nil, fmt.Errorf("rebuild current: %w", err)
	}
	sum, n, err := currentDigest(ctx, c)
	if err != nil {
		return nil, err
	}
	if n != facts.Rows["current"] || !bytes.Equal(sum, facts.Current) {
		return nil, fmt.Errorf("the current-version table rebuilt from the versions (%d rows) differs from the one backed up (%d rows)", n, facts.Rows["current"])
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return nil, err
	}
	committed = true
	if _, err := c.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return nil, err
	}
	return facts, nil
}

// loadRows inserts the dumped versions, audit leaves and metadata.
func loadRows(ctx context.Context, c *sql.Conn, dumpPath string, facts *dumpFacts) error {
	type table struct {
		name, insert string
		row          func(d *dumpReader) ([]any, error)
	}
	tables := []table{
		{"versions", "INSERT INTO versions (seq, rtype, rid, vid, updated, deleted, body) VALUES (?, ?, ?, ?, ?, ?, ?)", func(d *dumpReader) ([]any, error) {
			seq, err := d.uint()
			typ, err2 := d.bytes()
			id, err3 := d.bytes()
			vid, err4 := d.uint()
			updated, err5 := d.int()
			del, err6 := d.bytes()
			body, err7 := d.bytes()
			if err := errors.Join(err, err2, err3, err4, err5, err6, err7); err != nil {
				return nil, err
			}
			if len(del) != 1 || del[0] > 1 {
				return nil, errors.New("bad deleted flag")
			}
			return []any{int64(seq), string(typ), string(id), int64(vid), updated, int64(del[0]), body}, nil
		}},
		{"audit", "INSERT INTO audit (idx, leaf) VALUES (?, ?)", func(d *dumpReader) ([]any, error) {
			idx, err := d.uint()
			leaf, err2 := d.bytes()
			if err := errors.Join(err, err2); err != nil {
				return nil, err
			}
			return []any{int64(idx), leaf}, nil
		}},
		{"meta", "INSERT INTO meta (key, value) VALUES (?, ?)", func(d *dumpReader) ([]any, error) {
			key, err := d.bytes()
			value, err2 := d.bytes()
			if err := errors.Join(err, err2); err != nil {
				return nil, err
			}
			return []any{string(key), value}, nil
		}},
	}
	for _, t := range tables {
		d, err := openDump(filepath.Join(dumpPath, t.name), t.name)
		if err != nil {
			return err
		}
		stmt, err := c.PrepareContext(ctx, t.insert)
		if err != nil {
			d.close()
			return err
		}
		var n int64
		for d.more() {
			args, err := t.row(d)
			if err == nil {
				_, err = stmt.ExecContext(ctx, args...)
			}
			if err != nil {
				stmt.Close()
				d.close()
				return fmt.Errorf("load %s, row %d: %w", t.name, n+1, err)
			}
			n++
		}
		stmt.Close()
		d.close()
		if n != facts.Rows[t.name] {
			return fmt.Errorf("load %s: %d rows, the snapshot says %d", t.name, n, facts.Rows[t.name])
		}
	}
	return nil
}

// currentDigest hashes the current table in key order (see writeCurrent).
func currentDigest(ctx context.Context, c *sql.Conn) ([]byte, int64, error) {
	rows, err := c.QueryContext(ctx, "SELECT rtype, rid, vid, seq, deleted FROM current ORDER BY rtype, rid")
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	h := sha256.New()
	var n int64
	for rows.Next() {
		var r currentRow
		if err := rows.Scan(&r.typ, &r.id, &r.vid, &r.seq, &r.deleted); err != nil {
			return nil, 0, err
		}
		writeCurrent(h, r)
		n++
	}
	return h.Sum(nil), n, rows.Err()
}
