package backup

import (
	"bufio"
	"bytes"
	"context"
	"io"

	"filippo.io/age"
)

// Parent-guided chunking. Content-defined chunking alone re-stores the
// last chunk of a file that only grew: the earlier backup cut that chunk at
// end of file, not at a content boundary, so the next backup's chunker
// runs past the old end and finds a different boundary. A data directory's
// dump is append-mostly (versions and audit leaves by sequence), so that
// tail would be most of what a small change costs.
//
// Backup therefore reads the same path's chunk list in the newest earlier
// snapshot (the parent, read with the write key's server identity) and
// first tries its boundaries: as long as the next parent-size piece of
// the file has the parent chunk's keyed id, that piece is the chunk. At
// the first piece that differs, content-defined chunking takes over for
// the rest of the file. Boundaries never affect what is restored (every
// chunk is still named by its keyed id and checked on restore); they only
// decide what is stored again.
//
// A parent chunk shorter than chunkMin that is not the parent file's last
// chunk was an end-of-file cut two backups ago; following it would leave
// one more small chunk per backup for ever, so guidance stops there and
// the chunker merges it with what follows (a bounded, one-time cost).

// parentFiles returns the files of the newest snapshot this repository's
// write key can read, by path; nil when there is none (a first backup, or
// manifests the key cannot read: guidance is an optimisation only).
func (r *Repo) parentFiles() map[string]*File {
	if r.key.server == nil {
		return nil
	}
	rd := &Reader{st: r.st, ids: []age.Identity{r.key.server}, key: r.key}
	m, err := rd.Latest()
	if err != nil {
		return nil
	}
	files := make(map[string]*File, len(m.Files))
	for i := range m.Files {
		files[m.Files[i].Path] = &m.Files[i]
	}
	return files
}

// guidedChunks calls emit with each chunk of f in order: first the pieces
// that match parent's chunks, then content-defined chunks of the rest.
// emit's data is valid only during the call.
func (r *Repo) guidedChunks(ctx context.Context, f io.Reader, parent *File, buf []byte, emit func(data []byte) error) error {
	br := bufio.NewReaderSize(f, 1<<20)
	var rest io.Reader = br
	if parent != nil {
		for i, pc := range parent.Chunks {
			if err := ctx.Err(); err != nil {
				return err
			}
			last := i == len(parent.Chunks)-1
			if pc.Size == 0 || int(pc.Size) > len(buf) || (pc.Size < chunkMin && !last) {
				break
			}
			piece := buf[:pc.Size]
			n, err := io.ReadFull(br, piece)
			if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
				return err
			}
			if n < len(piece) || chunkID(r.key.IDKey, piece) != pc.ID {
				// The piece read belongs to the rest: chunk it afresh.
				held := append([]byte(nil), piece[:n]...)
				rest = io.MultiReader(bytes.NewReader(held), br)
				break
			}
			if err := emit(piece); err != nil {
				return err
			}
		}
	}
	ch := newChunker(rest, r.key.Pol)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := ch.Next(buf)
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := emit(c.Data); err != nil {
			return err
		}
	}
}
