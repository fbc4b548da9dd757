// Command verifier is the verification page's verifier, built for the
// browser (GOOS=js GOARCH=wasm, `make wasm`) into web/static/verify.wasm:
// it checks a receipt file against a genesis file, a credential file
// against the receipt, and a node's status answer, all with package proof,
// so that the page trusts only the genesis the person chose.
package main
