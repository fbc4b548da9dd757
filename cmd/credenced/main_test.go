package main

import (
	"flag"
	"os"
	"strconv"
	"testing"
)

// testsAtOnce is how many parallel tests run at once when -test.parallel is
// not given. The tests that take long run the CLI against a node process
// and mostly wait for it; go test's default (one test per core) would
// leave the cores idle.
const testsAtOnce = 8

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
	if cli.dir != "" {
		os.RemoveAll(cli.dir)
	}
	os.Exit(code)
}
