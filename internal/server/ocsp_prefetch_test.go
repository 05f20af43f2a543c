package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/phivault/phivault/internal/server"
)

// TestOCSPPrefetchAfterEarlyHandshake: a handshake before the responder
// could answer starts a fetch that is still in flight, and fails, when
// Prefetch is called; Prefetch waits for it and fetches again, so the
// next client gets a staple.
func TestOCSPPrefetchAfterEarlyHandshake(t *testing.T) {
	openssl := requireOpenSSL(t)
	ca := issue(t, "OCSP test CA", nil, 1, caTemplate)
	respURL, _ := ocspResponder(t, openssl, ca, ca, []int64{300}, nil)
	target, err := url.Parse(respURL)
	if err != nil {
		t.Fatal(err)
	}
	arrived, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(false, true) { // the early fetch: held, then refused
			close(arrived)
			<-release
			http.Error(w, "responder not started yet", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before front.Close, which waits for the held request
	leaf := ocspLeaf(t, ca, 300, front.URL)
	st := server.NewOCSPStapler(writeChain(t, leaf, ca), nil)
	addr := serveTLS(t, server.NewTLSConfig(st, nil), okHandler())
	if der := handshake(t, addr, ca); der != nil {
		t.Fatalf("stapled %d bytes before any fetch ended", len(der))
	}
	<-arrived
	done := make(chan error, 1)
	go func() { done <- st.Prefetch(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Prefetch returned (%v) while the early fetch was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	unblock()
	if err := <-done; err != nil {
		t.Fatalf("Prefetch: %v", err)
	}
	der := handshake(t, addr, ca)
	if r, err := ocsp.ParseResponseForCert(der, leaf.cert, ca.cert); err != nil || r.Status != ocsp.Good {
		t.Fatalf("no good staple after Prefetch (%d bytes): %v", len(der), err)
	}
}
