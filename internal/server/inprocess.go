package server

import (
	"bytes"
	"io"
	"net/http"

	"github.com/phivault/phivault/internal/policy"
)

// InProcess returns an HTTP client whose requests are served by h in this
// process as principal p, for operator commands that open the data
// directory themselves: they take the same code path (validation, policy,
// audit) as requests over the admin socket.
func InProcess(h http.Handler, p policy.Principal) *http.Client {
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		rec := &recorder{header: http.Header{}}
		h.ServeHTTP(rec, r.WithContext(policy.WithPrincipal(r.Context(), p)))
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		return &http.Response{
			StatusCode: rec.status, Status: http.StatusText(rec.status), Header: rec.header,
			Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()), Request: r,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		}, nil
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// recorder is a minimal in-memory http.ResponseWriter.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
