// Package browsertest starts headless Chromium (Debian's chromium
// package, /usr/bin/chromium) for the end-to-end tests of the console,
// passkeys and SMART launches. A test that needs it skips with a message
// when Chromium is missing, and fails instead under CI=true, where a
// silent skip would hide a missing install step.
package browsertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path is where Debian installs Chromium.
const Path = "/usr/bin/chromium"

// Need skips t when Chromium is absent (fails it under CI=true).
func Need(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is required under CI=true: %v", err)
		}
		t.Skipf("Chromium not installed at %s; skipping the browser test", Path)
	}
}

// Context returns the context of a fresh headless Chromium with its own
// profile directory, with the flags this machine needs (no sandbox as
// root, no background networking: the network is closed). The browser
// is stopped when t ends, or after timeout.
func Context(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	Need(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.IgnoreCertErrors, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	return ctx
}
