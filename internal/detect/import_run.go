package detect

import (
	"bytes"
	"time"
)

// RunRows runs the batch detector over imported rows (as Imports.Rows
// returns them) against dir, and writes the results to out like RunFiles.
// The rows pass through the same reader as a CSV file, so a run over the
// store and a run over the files imported into it score the same events.
// The rows stay in memory; nothing is written outside out.
func RunRows(dir *Directory, rows []Row, out string) (Summary, error) {
	start := time.Now()
	var buf bytes.Buffer
	if err := WriteCSV(&buf, rows); err != nil {
		return Summary{}, err
	}
	data := buf.Bytes()
	return runBatch(dir, start, func(rd *Reader, fn func(*Event)) error {
		return rd.Read(bytes.NewReader(data), fn)
	}, out)
}
