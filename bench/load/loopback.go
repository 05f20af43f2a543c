package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
)

// The load generator must never put load on anything but this machine: the
// base URL has to name a loopback address, and, because names can resolve
// anywhere and redirects can point anywhere, every connection is checked
// again at connect time and redirects are refused.

// checkLoopbackURL accepts https URLs whose host is a loopback IP address or
// "localhost" resolving to loopback addresses only.
func checkLoopbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("%s: only https URLs are supported", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("%s is not a loopback address: this tool only loads the local machine", host)
		}
		return u, nil
	}
	if host != "localhost" {
		return nil, fmt.Errorf("%s is not a loopback address (use 127.0.0.1, ::1 or localhost)", host)
	}
	ips, err := net.DefaultResolver.LookupIPAddr(context.Background(), host)
	if err != nil {
		return nil, err
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return nil, fmt.Errorf("localhost resolves to %s, which is not a loopback address", ip.IP)
		}
	}
	return u, nil
}

// loopbackOnly is a net.Dialer control function that refuses to connect
// to anything but a loopback address.
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to connect to %s: not a loopback address", address)
	}
	return nil
}

// newClient returns an HTTPS client for proto "h2" or "h1" (HTTP/1.1 with
// keep-alive) that trusts cacert and dials only loopback addresses.
func newClient(proto, cacert string, maxConns int) (*http.Client, error) {
	pool := x509.NewCertPool()
	if cacert != "" {
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", cacert)
		}
	}
	d := &net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true, // measure the server, not gzip on both sides
	}
	switch proto {
	case "h2":
		tr.ForceAttemptHTTP2 = true
	case "h1":
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // no HTTP/2
	default:
		return nil, fmt.Errorf("unknown protocol %q (h1 or h2)", proto)
	}
	return &http.Client{
		Transport: tr,
		Timeout:   2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirects are not followed")
		},
	}, nil
}
