package backup

import (
	"context"
	"errors"
	"testing"

	"filippo.io/age"

	"github.com/phivault/phivault/internal/backup/s3test"
)

// s3Repo makes a repository in a new bucket of srv (locked for lockDays
// when > 0) with the fixture's recipients and backs the fixture up three
// times into it.
func s3Repo(t *testing.T, srv *s3test.Server, f *fixture, lockDays int) Storage {
	t.Helper()
	ctx := context.Background()
	cfg := S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket(t, lockDays > 0), Prefix: "repo", AccessKey: srv.AccessKey, SecretKey: Secret(srv.SecretKey), LockDays: lockDays}
	st, err := NewS3(ctx, cfg, lockDays > 0)
	if err != nil {
		t.Fatal(err)
	}
	var recips []string
	for _, id := range f.ids {
		recips = append(recips, id.Recipient().String())
	}
	k, err := InitIn(st, recips)
	if err != nil {
		t.Fatal(err)
	}
	f.repo, f.key = "", k
	for range 3 {
		r, err := OpenIn(st, k)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Backup(ctx, f.sources(), nil, AuditTree{}); err != nil {
			t.Fatal(err)
		}
		f.write(t, "kek.json", []byte(randomHex(40))) // a small change, so chunks differ
	}
	return st
}

// TestPruneRefusedByObjectLock: with a retention still running, the bucket
// refuses the deletion even to its root account, and prune says so.
func TestPruneRefusedByObjectLock(t *testing.T) {
	srv := s3test.Start(t)
	f := newFixture(t)
	st := s3Repo(t, srv, f, 1)
	r, err := OpenReaderIn(st, []age.Identity{f.ids[0]})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Prune(context.Background(), Retention{Hourly: 1}, false)
	if !errors.Is(err, ErrDeleteRefused) {
		t.Fatalf("prune of locked snapshots: %v, want ErrDeleteRefused", err)
	}
	if ids, _ := r.Snapshots(); len(ids) != 3 {
		t.Fatalf("%d snapshots left, want 3", len(ids))
	}
	vr, err := r.Verify(context.Background(), VerifyOptions{ReadData: true})
	if err != nil || vr.Good != 3 || len(vr.Damage) != 0 {
		t.Fatalf("verify after the refused prune: %v %+v", err, vr)
	}
}

// TestPruneS3WithoutRetention: a bucket whose retention has ended (here:
// none) is pruned for good, every version, leaving no delete marker.
func TestPruneS3WithoutRetention(t *testing.T) {
	srv := s3test.Start(t)
	f := newFixture(t)
	st := s3Repo(t, srv, f, 0)
	r, err := OpenReaderIn(st, []age.Identity{f.ids[1]})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Prune(context.Background(), Retention{Hourly: 1}, false)
	if err != nil || len(rep.Remove) != 2 || rep.Deleted != 2+rep.Chunks || rep.Chunks == 0 {
		t.Fatalf("prune: %v %+v", err, rep)
	}
	fresh, err := OpenReaderIn(st, []age.Identity{f.ids[1]})
	if err != nil {
		t.Fatal(err)
	}
	vr, err := fresh.Verify(context.Background(), VerifyOptions{ReadData: true})
	if err != nil || !vr.OK() || vr.Snapshots != 1 || vr.Good != 1 {
		t.Fatalf("verify after prune: %v %+v", err, vr)
	}
	alt, err := st.(AlterationLister).Alterations(context.Background())
	if err != nil || len(alt) != 0 {
		t.Fatalf("alterations after prune: %v %v", alt, err)
	}
}
