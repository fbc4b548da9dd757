package node

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// nodeKey is one line of keys.go's table, as the tests see it.
type nodeKey struct {
	name string
	key  string
	// whole: the key is read and written as is; otherwise it is a prefix,
	// and the keys under it are the prefix and something after.
	whole bool
	// wiped: derived from the chain, so a rejected restore must drop it
	// (snapshots.wipe drops prefixWiped); the others must survive it.
	wiped bool
}

// nodeKeys lists every key and prefix of keys.go with its bytes written out:
// a change to a constant there is a change of the on-disk format and fails
// here.
var nodeKeys = []nodeKey{
	{"prefixInFlight", prefixInFlight, false, false},
	{"keyQueueMark", keyQueueMark, true, false},
	{"prefixBatchNumber", prefixBatchNumber, false, true},
	{"keyNextBatch", keyNextBatch, true, true},
	{"prefixBatchLeaves", prefixBatchLeaves, false, true},
	{"prefixBatchRecord", prefixBatchRecord, false, true},
	{"prefixBatchProof", prefixBatchProof, false, true},
	{"prefixKeptHeader", prefixKeptHeader, false, true},
	{"prefixWantedHeader", prefixWantedHeader, false, true},
	{"prefixValidatorSet", prefixValidatorSet, false, true},
	{"keyHeadersKept", keyHeadersKept, true, true},
	{"keyIndexed", keyIndexed, true, true},
	{"keyLastBatch", keyLastBatch, true, true},
	{"keyRestoring", keyRestoring, true, true},
	{"keyGenesis", keyGenesis, true, false},
	{"keyDataRecreated", keyDataRecreated, true, false},
	{"prefixOldQueue", prefixOldQueue, false, false},
	{"prefixOldPositions", prefixOldPositions, false, true},
}

// nodeKeyBytes is what each constant must hold.
var nodeKeyBytes = map[string]string{
	"prefixApp":          "a/",
	"prefixWiped":        "x",
	"prefixInFlight":     "qf/",
	"keyQueueMark":       "qm",
	"prefixBatchNumber":  "xn",
	"keyNextBatch":       "xc",
	"prefixBatchLeaves":  "xb/",
	"prefixBatchRecord":  "xr/",
	"prefixBatchProof":   "xp/",
	"prefixKeptHeader":   "xs/",
	"prefixWantedHeader": "xw/",
	"prefixValidatorSet": "xv/",
	"keyHeadersKept":     "xk",
	"keyIndexed":         "xh",
	"keyLastBatch":       "xt",
	"keyRestoring":       "xq",
	"keyGenesis":         "ng",
	"keyDataRecreated":   "nr",
	"prefixOldQueue":     "qp/",
	"prefixOldPositions": "xl",
}

// TestKeysLayout pins the bytes of every key and of what each key-building
// function makes.
func TestKeysLayout(t *testing.T) {
	t.Parallel()
	for _, k := range append(nodeKeys, nodeKey{name: "prefixApp", key: prefixApp}, nodeKey{name: "prefixWiped", key: prefixWiped}) {
		if want, ok := nodeKeyBytes[k.name]; !ok || k.key != want {
			t.Errorf("%s = %q, want %q", k.name, k.key, want)
		}
	}
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"in flight", qfKey("uni-1.x_y", 1<<40+2), "qf/uni-1.x_y/\x00\x00\x01\x00\x00\x00\x00\x02"},
		{"old queue", qpKey("a", ^uint64(0)), "qp/a/\xff\xff\xff\xff\xff\xff\xff\xff"},
		{"batch number 0", xnKey(0), "xn\x00"},
		{"batch number 300", xnKey(300), "xn\xac\x02"},
		{"batch leaves", xbKey("alpha", 258), "xb/alpha/\x00\x00\x00\x00\x00\x00\x01\x02"},
		{"batch record", xrKey("alpha", 258), "xr/alpha/\x00\x00\x00\x00\x00\x00\x01\x02"},
		{"batch proof", xpKey("alpha", 258), "xp/alpha/\x00\x00\x00\x00\x00\x00\x01\x02"},
		{"kept header", xsKey(1 << 32), "xs/\x00\x00\x00\x01\x00\x00\x00\x00"},
		{"wanted header", xwKey(7), "xw/\x00\x00\x00\x00\x00\x00\x00\x07"},
		{"validator set", xvKey(7), "xv/\x00\x00\x00\x00\x00\x00\x00\x07"},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("%s: key %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if h := xvHeight(xvKey(1<<40 + 3)); h != 1<<40+3 {
		t.Errorf("xvHeight(xvKey(%d)) = %d", int64(1<<40+3), h)
	}
	for _, prefix := range []string{prefixInFlight, prefixOldQueue, prefixBatchLeaves} {
		issuer, seq, err := splitIssuerSeq(issuerSeqKey(prefix, "uni-1", 1<<40+2), prefix)
		if err != nil || issuer != "uni-1" || seq != 1<<40+2 {
			t.Errorf("splitIssuerSeq under %q: %q, %d, %v", prefix, issuer, seq, err)
		}
	}
	for _, bad := range []string{"qf/", "qf/a", "qf/\x00\x00\x00\x00\x00\x00\x00\x01", "qf/a|\x00\x00\x00\x00\x00\x00\x00\x01"} {
		if issuer, seq, err := splitIssuerSeq([]byte(bad), prefixInFlight); err == nil {
			t.Errorf("splitIssuerSeq(%q) = %q, %d, want an error", bad, issuer, seq)
		}
	}
}

// TestKeysApart: no record of one kind can be taken for another. A prefix
// must not begin another key or prefix (its scans and drops would take
// them); a whole key must differ from every other whole key, and may be a
// prefix's beginning (xk beside a prefix xk/ would be apart: neither is read
// by a scan of the other). Nothing may lie under the app's a/, and exactly
// the keys derived from the chain lie under the prefix a rejected restore
// drops.
func TestKeysApart(t *testing.T) {
	t.Parallel()
	for _, k := range nodeKeys {
		if k.key == "" {
			t.Errorf("%s is empty", k.name)
		}
		if strings.HasPrefix(k.key, prefixApp) || strings.HasPrefix(prefixApp, k.key) {
			t.Errorf("%s %q overlaps the app's %q", k.name, k.key, prefixApp)
		}
		if strings.HasPrefix(k.key, prefixWiped) != k.wiped {
			t.Errorf("%s %q: under %q (dropped by a rejected restore) is %v, want %v", k.name, k.key, prefixWiped, !k.wiped, k.wiped)
		}
		for _, o := range nodeKeys {
			if o.name == k.name {
				continue
			}
			if !o.whole && strings.HasPrefix(k.key, o.key) {
				t.Errorf("%s %q lies under prefix %s %q", k.name, k.key, o.name, o.key)
			}
			if k.whole && o.whole && k.key == o.key {
				t.Errorf("%s and %s are both %q", k.name, o.name, k.key)
			}
		}
	}

	// What the functions build lies under its own prefix and nobody else's.
	high := strings.Repeat("z", 40)
	built := map[string][][]byte{
		"prefixInFlight":     {qfKey("a", 0), qfKey(high, ^uint64(0))},
		"prefixOldQueue":     {qpKey("a", 0), qpKey(high, ^uint64(0))},
		"prefixBatchNumber":  {xnKey(0), xnKey(^uint64(0))},
		"prefixBatchLeaves":  {xbKey("a", 0), xbKey(high, ^uint64(0))},
		"prefixBatchRecord":  {xrKey("a", 0), xrKey(high, ^uint64(0))},
		"prefixBatchProof":   {xpKey("a", 0), xpKey(high, ^uint64(0))},
		"prefixKeptHeader":   {xsKey(0), xsKey(1<<63 - 1)},
		"prefixWantedHeader": {xwKey(0), xwKey(1<<63 - 1)},
		"prefixValidatorSet": {xvKey(0), xvKey(1<<63 - 1)},
	}
	for name, keys := range built {
		for _, key := range keys {
			var under []string
			for _, o := range nodeKeys {
				if (o.whole && string(key) == o.key) || (!o.whole && bytes.HasPrefix(key, []byte(o.key))) {
					under = append(under, o.name)
				}
			}
			if len(under) != 1 || under[0] != name {
				t.Errorf("key %q built for %s lies under %v", key, name, under)
			}
		}
	}
}

// TestKeysOneTable: every constant of keys.go is in nodeKeys, and no other
// file of the package (tests aside) spells a key's bytes: they use the
// table's names.
func TestKeysOneTable(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	listed := map[string]bool{"prefixApp": true, "prefixWiped": true}
	for _, k := range nodeKeys {
		listed[k.name] = true
	}
	f, err := parser.ParseFile(fset, "keys.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			for _, n := range s.(*ast.ValueSpec).Names {
				declared++
				if !listed[n.Name] {
					t.Errorf("keys.go declares %s, which nodeKeys does not list", n.Name)
				}
			}
		}
	}
	if declared != len(listed) {
		t.Errorf("keys.go declares %d constants, nodeKeys lists %d", declared, len(listed))
	}

	spelled := map[string]string{}
	for name, key := range nodeKeyBytes {
		if name != "prefixWiped" { // "x" is too common a string to look for
			spelled[key] = name
		}
	}
	names, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range names {
		file := d.Name()
		if !strings.HasSuffix(file, ".go") || strings.HasSuffix(file, "_test.go") || file == "keys.go" {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatalf("%s: %v", fset.Position(lit.Pos()), err)
			}
			if name, ok := spelled[s]; ok {
				t.Errorf("%s: %q spelled out; use %s from keys.go", fset.Position(lit.Pos()), s, name)
			}
			return true
		})
	}
}
