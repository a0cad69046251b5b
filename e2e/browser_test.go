package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds Debian's Chromium; make test installs it (scripts/deps.sh).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is not installed; scripts/deps.sh test installs it")
	}
	t.Skip("Chromium is not installed (run `make deps`)")
	return ""
}

// screenshotDir is where browser tests leave their screenshots for a human
// to look at.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("ATRIUM_SCREENSHOT_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "e2e", ".screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts a headless Chromium for the test, its context bounded
// by timeout.
func browser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
	})
	return ctx
}

// TestBrowserSignIn signs in through the provider's form in a real
// Chromium and screenshots each product's landing page.
func TestBrowserSignIn(t *testing.T) {
	chromium(t) // before starting the suite: skips without a browser
	p, dataDir := suiteWithIdentity(t)
	pw, err := os.ReadFile(filepath.Join(dataDir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}

	ctx := browser(t, 90*time.Second)

	var loginURL string
	err = chromedp.Run(ctx,
		chromedp.Navigate(p.urls["Connect"]+"/"),
		chromedp.WaitVisible(`input[name="username"]`, chromedp.ByQuery),
		chromedp.Location(&loginURL),
		chromedp.SendKeys(`input[name="username"]`, "admin", chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, strings.TrimSpace(string(pw)), chromedp.ByQuery),
		chromedp.Submit(`input[name="password"]`, chromedp.ByQuery),
		// The sign-in page has a heading too: wait for what only a
		// signed-in product page has, the user in the header.
		chromedp.WaitVisible(`header .user form`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if !strings.HasPrefix(loginURL, p.urls["Identity"]) {
		t.Errorf("Connect sent the browser to %s, not to the provider", loginURL)
	}

	dir := screenshotDir(t)
	for _, prod := range products {
		var shot []byte
		var heading, header string
		err := chromedp.Run(ctx,
			chromedp.Navigate(p.urls[prod.display]+"/"),
			chromedp.WaitVisible(`header .user form`, chromedp.ByQuery),
			chromedp.Text(`main h1`, &heading, chromedp.ByQuery),
			chromedp.Text(`header`, &header, chromedp.ByQuery),
			chromedp.FullScreenshot(&shot, 100), // quality 100 gives a PNG
		)
		if err != nil {
			t.Fatalf("%s: %v", prod.display, err)
		}
		if heading != "Atrium "+prod.display {
			t.Errorf("%s heading %q (signed in without a second prompt?)", prod.display, heading)
		}
		if !strings.Contains(header, "admin") {
			t.Errorf("%s header does not show the signed-in user: %q", prod.display, header)
		}
		path := filepath.Join(dir, prod.name+"-landing.png")
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		if len(shot) < 5000 {
			t.Errorf("%s screenshot is only %d bytes", prod.display, len(shot))
		}
		t.Logf("screenshot: %s", path)
	}
}
