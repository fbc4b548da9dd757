//go:build e2e

package testnet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/credence-ledger/credence/vc"
)

// TestSignedStatusListOnFour (issue 18): a status list created and set with
// the CLI through member 0 is served by all four members as the same bytes,
// signed by the issuer and verifying; a set changes it on all four at the
// same height (read with ?height=, so the comparison does not race blocks).
func TestSignedStatusListOnFour(t *testing.T) {
	n := newNetwork(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := n.nodes[0]
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, n.bin, append(args, "--node", a.grpc, "--home", a.home)...).CombinedOutput()
		if err != nil {
			t.Fatalf("credenced %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	heightOf := func(out string) int64 {
		t.Helper()
		m := regexp.MustCompile(`at height (\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no height in %q", out)
		}
		h, _ := strconv.ParseInt(m[1], 10, 64)
		return h
	}
	cli("status-list", "create", "--id", "e2e-list")
	first := heightOf(cli("status-list", "set", "--id", "e2e-list", "3"))
	second := heightOf(cli("status-list", "set", "--id", "e2e-list", "4"))

	// get fetches the list at height from member i, once it is provable.
	get := func(i int, height int64) ([]byte, string) {
		t.Helper()
		url := fmt.Sprintf("http://127.0.0.1:%d/v1/statuslists/member-0-registrar/e2e-list?height=%d", n.base+10*i+5, height)
		for {
			res, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode == 200 {
					return b, res.Header.Get("Credence-List-Signed")
				}
				err = fmt.Errorf("%d %s", res.StatusCode, b)
			}
			select {
			case <-ctx.Done():
				t.Fatalf("member %d: no list at height %d: %v", i, height, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	var before, after []byte
	for i := range n.nodes {
		b, signedB := get(i, second-1)
		d, signedD := get(i, second)
		if signedB != "true" || signedD != "true" {
			t.Fatalf("member %d: lists at %d and %d served signed=%s,%s", i, second-1, second, signedB, signedD)
		}
		for _, doc := range [][]byte{b, d} {
			if _, err := vc.Verify(doc, vc.ResolveDIDKey); err != nil {
				t.Fatalf("member %d: list does not verify: %v\n%s", i, err, doc)
			}
		}
		if i == 0 {
			before, after = b, d
			if bytes.Equal(before, after) {
				t.Fatalf("the set at height %d did not change the list", second)
			}
			continue
		}
		if !bytes.Equal(b, before) || !bytes.Equal(d, after) {
			t.Fatalf("member %d serves other bytes than member 0:\n%s\n%s", i, d, after)
		}
	}
	t.Logf("signed list byte-identical on 4 members at heights %d and %d (first set at %d)", second-1, second, first)
}
