package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/credence-ledger/credence/web"
)

// sharedBrowser is the one headless Chromium of a test binary. Starting
// one takes seconds of a busy machine, a tab in a running one a fraction
// of that; tabs are independent pages (own document, viewport and chosen
// files), safe to use from parallel tests.
var sharedBrowser struct {
	once   sync.Once
	ctx    context.Context
	cancel func()
	err    error
}

// browserTab opens a tab in the shared browser, closed when t ends. A test
// runs its cases one after another in one tab, each from a fresh load of
// the page: a new tab per case costs a new renderer process, which
// compiles the verifier again, and cases run in parallel only contend for
// the same two cores.
// Without Chromium (or without the verifier built) the test fails: make
// test installs and builds both.
func browserTab(t *testing.T) context.Context {
	t.Helper()
	sharedBrowser.once.Do(func() { sharedBrowser.ctx, sharedBrowser.cancel, sharedBrowser.err = startBrowser() })
	if sharedBrowser.err != nil {
		t.Fatal(sharedBrowser.err)
	}
	tab, cancel := chromedp.NewContext(sharedBrowser.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return tab
}

func startBrowser() (context.Context, func(), error) {
	if _, err := fs.Stat(web.Static, web.WasmName); err != nil {
		return nil, nil, fmt.Errorf("the verifier is not built into package web (%v): make test builds it (make wasm)", err)
	}
	exe := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		return nil, nil, errors.New("chromium is not installed: make test-deps installs it (apt-get install -y chromium)")
	}
	// No UserDataDir: the allocator makes a temporary profile and removes
	// it when cancelled.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.DisableGPU,
		chromedp.WindowSize(1000, 1100))
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to run as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	cancelBoth := func() { cancel(); cancelAlloc() }
	if err := chromedp.Do(ctx); err != nil {
		cancelBoth()
		return nil, nil, fmt.Errorf("start chromium: %v", err)
	}
	return ctx, cancelBoth, nil
}

func closeBrowser() {
	if sharedBrowser.cancel != nil {
		sharedBrowser.cancel()
	}
}
