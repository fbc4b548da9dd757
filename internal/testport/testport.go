// Package testport hands tests loopback TCP ports below the kernel's
// ephemeral range.
//
// A port found by listening on :0 and closing comes from the ephemeral
// range, where any outgoing connection on the machine can take it before
// the test binds it again. Ports below 32768 are never handed out that way,
// so the only contenders are other tests, and a random pick among ~22,000
// ports checked by binding makes those collisions rare.
package testport

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
)

const (
	low  = 10000
	high = 32768 // the default start of net.ipv4.ip_local_port_range
)

// Free returns one free loopback port below the ephemeral range.
func Free(t testing.TB) int {
	t.Helper()
	return Range(t, 1)
}

// Range returns the first of n consecutive free loopback ports below the
// ephemeral range.
func Range(t testing.TB, n int) int {
	t.Helper()
	if n < 1 || n > (high-low)/4 {
		t.Fatalf("testport: %d ports asked for", n)
	}
	for attempt := 0; attempt < 100; attempt++ {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		base := low + int(binary.BigEndian.Uint32(b[:])%uint32(high-low-n))
		if allFree(base, n) {
			return base
		}
	}
	t.Fatalf("testport: no %d free ports in [%d, %d)", n, low, high)
	return 0
}

func allFree(base, n int) bool {
	for p := base; p < base+n; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}
