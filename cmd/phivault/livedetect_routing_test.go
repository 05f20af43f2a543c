package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/detect"
)

// TestAlertRoutingFlags: bad routing flags stop serve at start with one
// message naming every problem; good ones make the channels.
func TestAlertRoutingFlags(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		r    *alertRouting
		want []string
	}{
		{"webhook scheme", &alertRouting{webhook: "ftp://x"}, []string{"--alert-webhook must be an http(s) URL"}},
		{"smtp scheme", &alertRouting{smtp: "mail.example:25", mailFrom: "a@b.example", mailTo: "c@d.example"}, []string{"smtp://"}},
		{"password in URL", &alertRouting{smtp: "smtp://u:pw@mail.example", mailFrom: "a@b.example", mailTo: "c@d.example"}, []string{"must not hold the password"}},
		{"addresses", &alertRouting{smtp: "smtp://mail.example", mailFrom: "nobody", mailTo: ""}, []string{"sender", "no recipient"}},
		{"password in clear", &alertRouting{smtp: "smtp://u@mail.example", mailFrom: "a@b.example", mailTo: "c@d.example", smtpPassword: pw, smtpInsecure: true},
			[]string{"needs TLS"}},
		{"mail flags without smtp", &alertRouting{mailTo: "c@d.example"}, []string{"need --alert-smtp"}},
		{"syslog without CA", &alertRouting{syslog: "tls://siem.example:6514"}, []string{"--alert-syslog needs --alert-syslog-ca"}},
		{"syslog scheme and webhook", &alertRouting{syslog: "udp://siem.example:514", syslogCA: "ca.pem", webhook: "x"},
			[]string{"--alert-syslog must be tls://host:port", "--alert-webhook"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.r.channels("", nil)
			var ce *cliError
			if !errors.As(err, &ce) || ce.code != exitUsage {
				t.Fatalf("err = %v, want a usage error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}

	r := &alertRouting{webhook: "https://siem.example/hook", smtp: "smtp://alerts@mail.example", mailFrom: "phivault@h.example",
		mailTo: "po@h.example, soc@h.example", smtpPassword: pw}
	mk, err := r.channels("", nil)
	if err != nil {
		t.Fatal(err)
	}
	chans := mk()
	var names []string
	for n := range chans {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"email", "webhook"}) {
		t.Fatalf("channels = %v", names)
	}
	m := chans["email"].(*detect.Mail)
	if m.Addr != "mail.example:587" || m.Username != "alerts" || m.Password != "s3cret" || !slices.Equal(m.To, []string{"po@h.example", "soc@h.example"}) {
		t.Errorf("mail = %+v", m)
	}
	if m.CaseLink("case-x") != "" {
		t.Error("a case link before the server listens")
	}
	r.setBase("https://phivault.example:8443")
	if got := m.CaseLink("case-a b"); got != "https://phivault.example:8443/fhir/_cases/case-a%20b" {
		t.Errorf("case link = %q", got)
	}
}
