package proof

import (
	"bytes"
	"testing"
)

// TestStateKeyLayout pins the state keys receipts and status answers prove:
// the state machine writes under these same functions, so a change here is
// a change of the chain's format.
func TestStateKeyLayout(t *testing.T) {
	h := bytes.Repeat([]byte{0xab}, 32)
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"batch", BatchKey("uni-1.x_y", 1<<40+2), "b/uni-1.x_y/\x00\x00\x01\x00\x00\x00\x00\x02"},
		{"batch seq 0", BatchKey("a", 0), "b/a/\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"batch max seq", BatchKey("a", ^uint64(0)), "b/a/\xff\xff\xff\xff\xff\xff\xff\xff"},
		{"issuer", IssuerKey("alpha"), "i/alpha"},
		{"revocation", RevocationKey("alpha", h), "r/alpha/" + string(h)},
		{"registry", RegistryKey("alpha", "rl-1"), "sl/alpha/rl-1"},
		{"chunk", ChunkKey("alpha", "rl-1", 258), "sc/alpha/rl-1/\x00\x00\x01\x02"},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("%s: key %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}
