package node

import (
	"flag"
	"os"
	"strconv"
	"testing"
)

// testsAtOnce is how many parallel tests run at once when -test.parallel is
// not given. Most tests here run a real single-node chain and spend their
// time waiting for blocks, not on a core, so go test's default (one test
// per core) leaves the cores mostly idle; each running node holds some
// 100 to 250 MB.
const testsAtOnce = 8

// TestMain also closes the browser the page's tests share once every test
// is done: Chromium's helper processes and its profile directory would
// otherwise outlive the test binary.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		if err := flag.Set("test.parallel", strconv.Itoa(testsAtOnce)); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	closeBrowser()
	os.Exit(code)
}
