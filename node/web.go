package node

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/credence-ledger/credence/web"
)

// pageSecurityPolicy keeps the page to its own files: no other origin's
// script, style, font or frame, and WebAssembly compiled only from them.
const pageSecurityPolicy = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"img-src 'self'; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

// webHandler serves the verification page (package web) at "/": a person
// checks a receipt in the browser against a genesis they choose.
func (n *Node) webHandler() http.Handler {
	return newPageHandler(web.Static)
}

func newPageHandler(files fs.FS) http.Handler {
	static := http.FileServerFS(files)
	wasm := &gzipOnce{files: files, name: web.WasmName}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", pageSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The page changes with the binary; a browser asks again each time.
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/"+web.WasmName && acceptsGzip(r) {
			if body, ok := wasm.get(); ok {
				h.Set("Content-Type", "application/wasm")
				h.Set("Content-Encoding", "gzip")
				h.Set("Vary", "Accept-Encoding")
				// With a validator, a browser's revisit is a 304 and it
				// reuses the code it compiled: 16 MB of WebAssembly
				// compiled again on every visit costs a second or more.
				h.Set("ETag", wasm.etag)
				// Embedded files carry no modification time: none is sent.
				http.ServeContent(w, r, web.WasmName, time.Time{}, bytes.NewReader(body))
				return
			}
		}
		static.ServeHTTP(w, r)
	})
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(part, ";")
		if strings.TrimSpace(enc) != "gzip" {
			continue
		}
		// "q=0" (in any spelling, 0.0, 0.000) refuses it.
		q, found := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		return !found || strings.Trim(q, "0.") != ""
	}
	return false
}

// gzipOnce compresses the verifier once, on its first request: it is a
// quarter of its size compressed, and the same bytes for every browser.
type gzipOnce struct {
	files fs.FS
	name  string
	once  sync.Once
	body  []byte
	etag  string // of the compressed body
	ok    bool
}

func (g *gzipOnce) get() ([]byte, bool) {
	g.once.Do(func() {
		raw, err := fs.ReadFile(g.files, g.name)
		if err != nil {
			return // not built: the file server answers 404
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if _, err := zw.Write(raw); err != nil {
			return
		}
		if err := zw.Close(); err != nil {
			return
		}
		sum := sha256.Sum256(buf.Bytes())
		g.body, g.etag, g.ok = buf.Bytes(), `"`+hex.EncodeToString(sum[:16])+`"`, true
	})
	return g.body, g.ok
}
