package node

import (
	"os"
	"testing"
)

// TestMain closes the browser the page's tests share once every test
// is done: Chromium's helper processes and its profile directory would
// otherwise outlive the test binary.
func TestMain(m *testing.M) {
	code := m.Run()
	closeBrowser()
	os.Exit(code)
}
