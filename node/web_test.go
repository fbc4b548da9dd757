package node

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"github.com/credence-ledger/credence/web"
)

var screenshotDir = flag.String("web.screenshots", "", "directory for the browser tests' screenshots (default: a new directory under $TMPDIR, printed)")

// TestPageHandler: the page's files with their headers, the verifier
// compressed for browsers that take gzip, and nothing but GET and HEAD.
func TestPageHandler(t *testing.T) {
	page := []byte("<!doctype html><title>t</title>")
	wasm := []byte(strings.Repeat("\x00asm verifier ", 4096))
	srv := httptest.NewServer(newPageHandler(fstest.MapFS{
		"index.html":   {Data: page},
		web.WasmName:   {Data: wasm},
		"wasm_exec.js": {Data: []byte("// loader")},
	}))
	defer srv.Close()
	// The transport would undo the compression this test checks.
	cl := &http.Client{Transport: &http.Transport{DisableCompression: true}}

	get := func(path string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, body
	}

	res, body := get("/")
	if res.StatusCode != 200 || string(body) != string(page) || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/: %d %q %q", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "'wasm-unsafe-eval'") {
		t.Fatalf("content security policy %q", csp)
	}

	res, body = get("/"+web.WasmName, "Accept-Encoding", "gzip")
	if res.Header.Get("Content-Encoding") != "gzip" || res.Header.Get("Content-Type") != "application/wasm" {
		t.Fatalf("wasm with gzip: %v", res.Header)
	}
	zr, err := gzip.NewReader(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || string(plain) != string(wasm) || len(body) >= len(wasm) {
		t.Fatalf("gzip'd wasm: %d bytes for %d, decoded equal: %v (%v)", len(body), len(wasm), string(plain) == string(wasm), err)
	}
	// A revisit with the validator is answered 304: the browser keeps
	// the module it compiled.
	etag := res.Header.Get("ETag")
	if len(etag) < 10 || etag[0] != '"' {
		t.Fatalf("wasm with gzip: ETag %q", etag)
	}
	if res, body = get("/"+web.WasmName, "Accept-Encoding", "gzip", "If-None-Match", etag); res.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("wasm revisit with its ETag: %d, %d bytes", res.StatusCode, len(body))
	}
	if res, _ = get("/"+web.WasmName, "Accept-Encoding", "gzip", "If-None-Match", `"other"`); res.StatusCode != http.StatusOK {
		t.Fatalf("wasm with another ETag: %d", res.StatusCode)
	}
	for _, refused := range []string{"gzip;q=0", "br, gzip; q=0.0", "identity", ""} {
		res, body = get("/"+web.WasmName, "Accept-Encoding", refused)
		if res.Header.Get("Content-Encoding") != "" || string(body) != string(wasm) {
			t.Fatalf("Accept-Encoding %q: %v, %d bytes", refused, res.Header, len(body))
		}
	}
	if res, _ = get("/"+web.WasmName, "Accept-Encoding", "br;q=1, gzip;q=0.5"); res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip;q=0.5 not served gzip'd: %v", res.Header)
	}
	if res, _ := get("/nothing.js"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown file: %d", res.StatusCode)
	}
	res, err = cl.Post(srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", res.StatusCode)
	}

	// Not built: the verifier is missing and the page, not the server, says so.
	bare := httptest.NewServer(newPageHandler(fstest.MapFS{"index.html": {Data: page}}))
	defer bare.Close()
	res, err = cl.Get(bare.URL + "/" + web.WasmName)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("verifier not built: %d", res.StatusCode)
	}
}

func screenshots(t *testing.T) string {
	t.Helper()
	dir := *screenshotDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "credence-page-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// pageResult is what the page shows after Verify.
type pageResult struct {
	verdict, step, details, trust, standing, freshness string
	// class is the result section's class: "valid" green, "invalid" red,
	// "unchecked" grey.
	class string
}

// utcSeconds is how the page shows a time: to the second, in UTC.
var utcSeconds = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC`)

// TestVerificationPage loads the page from a real node in headless
// Chromium and checks receipts in it: valid, tampered, the wrong file,
// another chain's genesis, fetched by hash, revoked; at desktop and
// phone widths, with a screenshot of each state.
func TestVerificationPage(t *testing.T) {
	t.Parallel()
	ctx := browserTab(t)
	shots := screenshots(t)

	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	// Generous: the machine running the tests may be busy with others.
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	diploma := []byte("Jane Doe, BSc Physics, 2026\n")
	revokedDiploma := []byte("John Roe, MSc Chemistry, 2026\n")
	hashes := append(hashOf(string(diploma)), hashOf(string(revokedDiploma))...)
	if _, err := cl.Submit(h.authed(rctx), &pb.SubmitRequest{Hashes: hashes}); err != nil {
		t.Fatal(err)
	}
	r := waitReceipt(rctx, t, cl, hashOf(string(diploma)))
	rr := waitReceipt(rctx, t, cl, hashOf(string(revokedDiploma)))
	receiptJSON, err := proof.MarshalReceiptJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"diploma":  write("diploma.txt", diploma),
		"receipt":  write("diploma.txt.receipt.json", receiptJSON),
		"tampered": write("tampered.receipt.json", []byte(strings.Replace(string(receiptJSON), `"leaf_index": 0`, `"leaf_index": 1`, 1))),
		"forged":   write("forged.txt", []byte("Jane Doe, PhD Physics, 2026\n")),
		"genesis":  write("genesis.json", mustRead(t, filepath.Join(h.dir, "config", "genesis.json"))),
		"other":    write("other-chain-genesis.json", mustRead(t, "../proof/testdata/vectors/four-validators/genesis.json")),
	}
	if files["tampered"] == files["receipt"] || strings.Count(string(receiptJSON), `"leaf_index": 0`) != 1 {
		t.Fatalf("the receipt has no leaf_index 0 to tamper with:\n%s", receiptJSON)
	}

	// The page alone (n.webHandler) is the offline check; the node's own
	// HTTP server (the page, the gateway and its file routes) is the
	// online one.
	offline := httptest.NewServer(n.webHandler())
	defer offline.Close()
	onlineURL := "http://" + n.HTTPAddr()

	check := func(t *testing.T, base string, setup []chromedp.Action[chromedp.Void], shot string, waitStatus bool) pageResult {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		steps := []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(base + "/"),
			chromedp.WaitEnabled(chromedp.ID("verify")),
		}
		steps = append(steps, setup...)
		steps = append(steps, chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.ID("result")))
		if waitStatus {
			steps = append(steps, chromedp.WaitVisible(chromedp.ID("status")))
		}
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("page: %v", err)
		}
		var res pageResult
		for _, f := range []struct {
			id  string
			out *string
		}{{"verdict", &res.verdict}, {"step", &res.step}, {"details", &res.details}, {"trust", &res.trust}, {"standing", &res.standing}, {"freshness", &res.freshness}, {"class", &res.class}} {
			expr := `document.getElementById("` + f.id + `").textContent`
			if f.id == "class" {
				expr = `document.getElementById("result").className`
			}
			v, err := chromedp.Run(tctx, chromedp.Evaluate[string](expr))
			if err != nil {
				t.Fatal(err)
			}
			*f.out = v
		}
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, shot), png, 0o644); err != nil {
			t.Fatal(err)
		}
		return res
	}
	upload := func(id string, path string) chromedp.Action[chromedp.Void] {
		return chromedp.SetUploadFiles(chromedp.ID(id), []string{path})
	}

	t.Run("valid receipt and file against a dropped genesis, node offline", func(t *testing.T) {
		res := check(t, offline.URL, []chromedp.Action[chromedp.Void]{
			upload("receipt", files["receipt"]), upload("credential", files["diploma"]), upload("genesis", files["genesis"]),
		}, "valid-offline.png", true)
		if res.verdict != "VALID" || res.step != "" {
			t.Fatalf("verdict %q, step %q", res.verdict, res.step)
		}
		fileHash := sha256.Sum256(diploma)
		// Hashes as the CLI prints them (multibase z…), not hex.
		for _, want := range []string{"Issuer" + r.Batch.Issuer, "Height" + itoa(r.Batch.Height), "(leaf 0 of ", "matches the receipt",
			"Credential hash" + proof.FormatBinary(r.CredentialHash), "File hash" + proof.FormatBinary(fileHash[:])} {
			if !strings.Contains(res.details, want) {
				t.Errorf("details %q lack %q", res.details, want)
			}
		}
		// To the second, in UTC: no nanoseconds.
		if !regexp.MustCompile(`Time` + utcSeconds.String() + `Batch`).MatchString(res.details) {
			t.Errorf("time not shown to the second in UTC: %q", res.details)
		}
		if res.class != "valid" {
			t.Errorf("result class %q", res.class)
		}
		if !strings.Contains(res.trust, "the genesis file you chose (genesis.json): chain credence-test, 1 validator") {
			t.Errorf("trust root shown as %q", res.trust)
		}
		if !strings.HasPrefix(res.standing, "Revocation status unknown") {
			t.Errorf("offline status shown as %q", res.standing)
		}
	})
	t.Run("tampered receipt", func(t *testing.T) {
		res := check(t, offline.URL, []chromedp.Action[chromedp.Void]{
			upload("receipt", files["tampered"]), upload("genesis", files["genesis"]),
		}, "invalid-tampered.png", false)
		if res.verdict != "INVALID" || !strings.HasPrefix(res.step, "Failed at: audit path — ") {
			t.Fatalf("verdict %q, step %q", res.verdict, res.step)
		}
	})
	t.Run("wrong credential file", func(t *testing.T) {
		res := check(t, offline.URL, []chromedp.Action[chromedp.Void]{
			upload("receipt", files["receipt"]), upload("credential", files["forged"]), upload("genesis", files["genesis"]),
		}, "invalid-wrong-file.png", false)
		if res.verdict != "INVALID" || !strings.HasPrefix(res.step, "Failed at: credential file — the file hashes to") {
			t.Fatalf("verdict %q, step %q", res.verdict, res.step)
		}
	})
	t.Run("genesis of another chain", func(t *testing.T) {
		res := check(t, offline.URL, []chromedp.Action[chromedp.Void]{
			upload("receipt", files["receipt"]), upload("credential", files["diploma"]), upload("genesis", files["other"]),
		}, "invalid-other-chain.png", false)
		if res.verdict != "INVALID" || !strings.HasPrefix(res.step, "Failed at: chain id — ") ||
			!strings.Contains(res.trust, "other-chain-genesis.json): chain e2e") {
			t.Fatalf("verdict %q, step %q, trust %q", res.verdict, res.step, res.trust)
		}
	})
	t.Run("no genesis and the node's unreachable", func(t *testing.T) {
		res := check(t, offline.URL, []chromedp.Action[chromedp.Void]{upload("receipt", files["receipt"])}, "no-genesis.png", false)
		if res.verdict != "COULD NOT CHECK" || res.class != "unchecked" || !strings.Contains(res.step, "this node's genesis could not be fetched") {
			t.Fatalf("verdict %q, step %q", res.verdict, res.step)
		}
	})
	t.Run("fetched by hash against the node's genesis, with status", func(t *testing.T) {
		res := check(t, onlineURL, []chromedp.Action[chromedp.Void]{
			chromedp.SendKeys(chromedp.ID("hash"), proof.FormatBinary(r.CredentialHash)),
			chromedp.Click(chromedp.ID("fetch")),
			chromedp.Poll[chromedp.Void](`document.getElementById("fetched").textContent.startsWith("Receipt fetched")`),
			upload("credential", files["diploma"]),
		}, "valid-online.png", true)
		if res.verdict != "VALID" || !strings.Contains(res.trust, "this node's genesis (/genesis.json): chain credence-test") {
			t.Fatalf("verdict %q, step %q, trust %q", res.verdict, res.step, res.trust)
		}
		if !strings.HasPrefix(res.standing, "Not revoked") || !strings.HasPrefix(res.freshness, "As of height ") || !utcSeconds.MatchString(res.freshness) {
			t.Fatalf("status %q, freshness %q", res.standing, res.freshness)
		}
	})
	t.Run("unknown hash", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		err := chromedp.Do(tctx, chromedp.Navigate(onlineURL+"/"), chromedp.WaitEnabled(chromedp.ID("verify")),
			chromedp.SendKeys(chromedp.ID("hash"), strings.Repeat("ab", 32)), chromedp.Click(chromedp.ID("fetch")),
			chromedp.Poll[chromedp.Void](`document.getElementById("fetched").textContent.startsWith("No receipt:")`))
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("revoked credential", func(t *testing.T) {
		issuer, issuerKey, err := IssuerSigningKey(h.dir)
		if err != nil {
			t.Fatal(err)
		}
		body := &pb.TxBody{ChainId: n.chainID, Signer: issuer, Msg: &pb.TxBody_Revoke{Revoke: &pb.Revoke{
			Issuer: issuer, Reason: 4,
			Hashes: []*pb.RevokedHash{{Hash: rr.CredentialHash, BatchSeq: rr.Batch.Seq, LeafIndex: rr.LeafIndex, AuditPath: rr.AuditPath}},
		}}}
		revokedAt := broadcastTx(rctx, t, cl, body, issuerKey)
		// The node answers for a state once the block after it is signed.
		for {
			res, err := cl.GetStatus(rctx, &pb.GetStatusRequest{Hash: rr.CredentialHash})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status.Height >= revokedAt {
				break
			}
			select {
			case <-rctx.Done():
				t.Fatalf("no status answer at height %d", revokedAt)
			case <-time.After(50 * time.Millisecond):
			}
		}
		revReceipt, err := proof.MarshalReceiptJSON(rr)
		if err != nil {
			t.Fatal(err)
		}
		res := check(t, onlineURL, []chromedp.Action[chromedp.Void]{
			upload("receipt", write("revoked.receipt.json", revReceipt)), upload("credential", write("revoked.txt", revokedDiploma)),
		}, "revoked.png", true)
		// One verdict: a revoked credential is a red REVOKED, not a green
		// VALID above a red box; the reason code is explained.
		if res.verdict != "REVOKED" || res.class != "invalid" || !strings.HasPrefix(res.standing, "Revoked at height "+itoa(revokedAt)+", reason code 4") ||
			!strings.Contains(res.standing, "the issuer's own code") {
			t.Fatalf("verdict %q (%s), status %q", res.verdict, res.class, res.standing)
		}
	})
	t.Run("phone width", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		err := chromedp.Do(tctx, chromedp.EmulateViewport(375, 740, chromedp.EmulateMobile, chromedp.EmulateTouch),
			chromedp.Navigate(offline.URL+"/"), chromedp.WaitEnabled(chromedp.ID("verify")),
			upload("receipt", files["receipt"]), upload("credential", files["diploma"]), upload("genesis", files["genesis"]),
			chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.ID("result")))
		if err != nil {
			t.Fatal(err)
		}
		// Nothing wider than the screen: no sideways scrolling, every
		// field and the verdict inside the viewport's width.
		overflow, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](`(() => {
			const w = document.documentElement.clientWidth, out = [];
			if (document.documentElement.scrollWidth > w) out.push("page " + document.documentElement.scrollWidth + " > " + w);
			for (const el of document.querySelectorAll("input, button, #verdict, dd, legend")) {
				const r = el.getBoundingClientRect();
				if (r.right > w + 0.5 || r.left < -0.5) out.push((el.id || el.tagName) + " " + r.left + ".." + r.right);
			}
			return out;
		})()`))
		if err != nil {
			t.Fatal(err)
		}
		if len(overflow) > 0 {
			t.Errorf("at 375 px wide, outside the screen: %v", overflow)
		}
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, "phone-valid.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong file at phone width", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		err := chromedp.Do(tctx, chromedp.EmulateViewport(375, 740, chromedp.EmulateMobile, chromedp.EmulateTouch),
			chromedp.Navigate(offline.URL+"/"), chromedp.WaitEnabled(chromedp.ID("verify")),
			upload("receipt", files["receipt"]), upload("credential", files["forged"]), upload("genesis", files["genesis"]),
			chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.ID("result")))
		if err != nil {
			t.Fatal(err)
		}
		// The error names two hashes: they wrap rather than widen the page.
		got, err := chromedp.Run(tctx, chromedp.Evaluate[[]any](`[document.documentElement.scrollWidth, document.documentElement.clientWidth, document.getElementById("verdict").textContent]`))
		if err != nil {
			t.Fatal(err)
		}
		if got[2] != "INVALID" || got[0].(float64) > got[1].(float64) {
			t.Errorf("wrong-file error at 375 px: verdict %v, page %v px wide in a %v px viewport", got[2], got[0], got[1])
		}
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, "phone-wrong-file.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(tctx, chromedp.EmulateViewport(1000, 1100)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("chosen file that cannot be read", func(t *testing.T) {
		gone := write("gone.receipt.json", receiptJSON)
		res := check(t, offline.URL, []chromedp.Action[chromedp.Void]{
			upload("receipt", gone), upload("genesis", files["genesis"]),
			chromedp.Func(func(context.Context, *chromedp.Target) error { return os.Remove(gone) }),
		}, "unreadable.png", false)
		if res.verdict != "COULD NOT CHECK" || res.class != "unchecked" || !strings.Contains(res.step, "gone.receipt.json could not be read") {
			t.Fatalf("verdict %q (%s), step %q", res.verdict, res.class, res.step)
		}
	})
	t.Run("50 MB file as the receipt", func(t *testing.T) {
		// Not UTF-8: read as text, each byte would become three.
		big := write("big.receipt.json", bytes.Repeat([]byte{0xff}, 50_000_000))
		res := check(t, offline.URL, []chromedp.Action[chromedp.Void]{upload("receipt", big), upload("genesis", files["genesis"])}, "big.png", false)
		if res.verdict != "INVALID" || !strings.Contains(res.step, "big.receipt.json is 50.0 MB") || !strings.Contains(res.step, "4.2 MB") {
			t.Fatalf("verdict %q, step %q", res.verdict, res.step)
		}
	})
	t.Run("files dropped on the drop area", func(t *testing.T) {
		js := func(b []byte) string {
			out, err := json.Marshal(string(b))
			if err != nil {
				t.Fatal(err)
			}
			return string(out)
		}
		// A synthetic drop, as a person's: the files in a DataTransfer,
		// in no particular order, the page sorting out which is which.
		drop := chromedp.Evaluate[bool](`(() => {
			const dt = new DataTransfer();
			dt.items.add(new File([` + js(diploma) + `], "diploma.txt", {type: "text/plain"}));
			dt.items.add(new File([` + js(mustRead(t, files["genesis"])) + `], "genesis.json", {type: "application/json"}));
			dt.items.add(new File([` + js(receiptJSON) + `], "diploma.txt.receipt.json", {type: "application/json"}));
			const area = document.getElementById("drop");
			for (const type of ["dragenter", "dragover", "drop"]) {
				area.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
			}
			return true;
		})()`)
		res := check(t, offline.URL, []chromedp.Action[chromedp.Void]{
			chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error { _, err := chromedp.Run(ctx, drop); return err }),
			chromedp.Poll[chromedp.Void](`document.getElementById("receipt").files.length === 1 && document.getElementById("genesis").files.length === 1 && document.getElementById("credential").files.length === 1`),
		}, "dropped.png", true)
		if res.verdict != "VALID" || !strings.Contains(res.details, "matches the receipt") || !strings.Contains(res.trust, "the genesis file you chose (genesis.json)") {
			t.Fatalf("verdict %q, step %q, details %q, trust %q", res.verdict, res.step, res.details, res.trust)
		}
	})
}

// TestVerifyTimeInBrowser measures the verifier in Chromium on the test
// vectors (docs/benchmarks.md): the time of one receipt check, genesis
// and receipt parsing included, as the page calls it.
//
// Beside other tests its figures are those of a shared machine; the
// reported ones come from a run of it alone (-run TestVerifyTimeInBrowser).
func TestVerifyTimeInBrowser(t *testing.T) {
	t.Parallel()
	ctx := browserTab(t)
	srv := httptest.NewServer(newPageHandler(web.Static))
	defer srv.Close()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitEnabled(chromedp.ID("verify"))); err != nil {
		t.Fatal(err)
	}
	const runs = 20
	for _, v := range []string{"one-validator/single-hash", "one-validator/large-batch", "four-validators/full-commit", "four-validators/validator-link"} {
		genesis, err := json.Marshal(string(mustRead(t, "../proof/testdata/vectors/"+filepath.Dir(v)+"/genesis.json")))
		if err != nil {
			t.Fatal(err)
		}
		receipt, err := json.Marshal(string(mustRead(t, "../proof/testdata/vectors/"+v+".receipt.json")))
		if err != nil {
			t.Fatal(err)
		}
		ms, err := chromedp.Run(tctx, chromedp.Evaluate[float64](`(() => {
			const g = `+string(genesis)+`, r = `+string(receipt)+`;
			if (!JSON.parse(credence.verifyReceipt(g, r, null)).valid) return -1;
			for (let i = 0; i < 5; i++) credence.verifyReceipt(g, r, null); // warm up
			const t0 = performance.now();
			for (let i = 0; i < `+itoa(runs)+`; i++) credence.verifyReceipt(g, r, null);
			return (performance.now() - t0) / `+itoa(runs)+`;
		})()`))
		if err != nil {
			t.Fatal(err)
		}
		if ms < 0 {
			t.Fatalf("%s does not verify in the browser", v)
		}
		t.Logf("%s: %.2f ms per receipt in Chromium (mean of %d)", v, ms, runs)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
