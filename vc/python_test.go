package vc

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// pythonWithPyld finds a python3 that has Debian's python3-pyld and
// python3-cryptography (/usr/bin/python3 first: a pyenv python3 on PATH does
// not see Debian's modules).
func pythonWithPyld(t *testing.T) string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import pyld.jsonld, cryptography.hazmat.primitives.asymmetric.ed25519").Run() == nil {
			return py
		}
	}
	t.Fatal("python3 with pyld and cryptography not found: make test-deps (apt-get install python3-pyld python3-cryptography)")
	return ""
}

// TestIndependentPythonCheck: documents this package signs verify under an
// unrelated implementation (pyld + python3-cryptography, testdata/check_eddsa.py),
// and a one-byte change makes that check fail.
func TestIndependentPythonCheck(t *testing.T) {
	py := pythonWithPyld(t)
	dir := t.TempDir()
	ctxMap := map[string]string{}
	for url, name := range bundledContexts {
		abs, err := filepath.Abs(filepath.Join("contexts", name))
		if err != nil {
			t.Fatal(err)
		}
		ctxMap[url] = abs
	}
	mapFile := filepath.Join(dir, "contexts.json")
	b, _ := json.Marshal(ctxMap)
	if err := os.WriteFile(mapFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(doc []byte) (int, string) {
		f := filepath.Join(dir, "signed.json")
		if err := os.WriteFile(f, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(py, "testdata/check_eddsa.py", f, mapFile).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	key := vectorKeyPair(t)
	rdfc, err := Sign([]byte(statusListVC), EddsaRDFC2022, key, WithCreated(vectorCreated))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Sign(rdfc, EddsaJCS2022, key, WithCreated(vectorCreated))
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string][]byte{"eddsa-rdfc-2022": rdfc, "rdfc+jcs proof set": set} {
		if code, out := run(doc); code != 0 {
			t.Errorf("%s: python check exit %d:\n%s", name, code, out)
		}
		bad := bytes.Replace(doc, []byte("revocation"), []byte("revocatioN"), 1)
		if code, out := run(bad); code != 1 {
			t.Errorf("%s with one byte changed: python check exit %d, want 1:\n%s", name, code, out)
		}
	}
}
