//go:build js && wasm

package main

import (
	"encoding/json"
	"syscall/js"
	"time"

	"github.com/credence-ledger/credence/proof"
)

// The page calls two functions of the global object credence; each
// returns its answer as a JSON string:
//
//	credence.verifyReceipt(genesisText, receiptText, credentialBytes | null)
//	credence.verifyStatus(genesisText, statusText, nowUnixMillis)
//	credence.verifyCredential(genesisText, credentialBytes)
//	credence.verifyListStatus(genesisText, entryJSON, listText, exportText, issuer, nowUnixMillis)
//
// and credence.maxReceiptBytes is the largest receipt file it takes.
func main() {
	api := js.Global().Get("Object").New()
	api.Set("verifyReceipt", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 3 {
			return answer(&outcome{Step: stepFileForm, Reason: "verifyReceipt takes genesis, receipt and credential"})
		}
		var credential []byte
		if c := args[2]; !c.IsNull() && !c.IsUndefined() {
			credential = make([]byte, c.Get("length").Int())
			js.CopyBytesToGo(credential, c)
		}
		return answer(checkReceipt([]byte(args[0].String()), []byte(args[1].String()), credential))
	}))
	api.Set("verifyStatus", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 3 {
			return answer(&standing{Step: stepFileForm, Reason: "verifyStatus takes genesis, status and the time"})
		}
		now := time.UnixMilli(int64(args[2].Float()))
		return answer(checkStatus([]byte(args[0].String()), []byte(args[1].String()), now))
	}))
	api.Set("verifyCredential", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 2 {
			return answer(&credentialOutcome{Verdict: verdictUnchecked, Step: stepFileForm, Reason: "verifyCredential takes genesis and credential"})
		}
		doc := make([]byte, args[1].Get("length").Int())
		js.CopyBytesToGo(doc, args[1])
		return answer(checkCredential([]byte(args[0].String()), doc))
	}))
	api.Set("verifyListStatus", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 6 {
			return answer(&listStanding{Step: stepFileForm, Reason: "verifyListStatus takes genesis, entry, list, export, issuer and the time"})
		}
		now := time.UnixMilli(int64(args[5].Float()))
		return answer(checkListStatus([]byte(args[0].String()), []byte(args[1].String()), []byte(args[2].String()),
			[]byte(args[3].String()), args[4].String(), now))
	}))
	// The page refuses a larger receipt file before reading it, with its
	// size, rather than pass it here to be refused.
	api.Set("maxReceiptBytes", proof.DefaultMaxReceiptBytes)
	js.Global().Set("credence", api)
	js.Global().Call("dispatchEvent", js.Global().Get("Event").New("credence-ready"))
	select {}
}

func answer(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `{"step":"format","reason":"answer not encodable"}`
	}
	return string(b)
}
