// Package web holds the verification page a node serves at "/": HTML, CSS
// and script, and the verifier compiled to WebAssembly (verify.wasm, with
// Go's wasm_exec.js), which `make wasm` builds into static/ before the
// node is compiled. Without them the page still loads and says the
// verifier is not built.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// Static is the page's files, rooted at the page's directory.
var Static = func() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		// "static" is a valid path embedded above; Sub cannot fail on it.
		panic(err)
	}
	return sub
}()

// WasmName is the verifier's file in Static; absent when it was not built.
const WasmName = "verify.wasm"
