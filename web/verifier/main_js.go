//go:build js && wasm

package main

import (
	"encoding/json"
	"syscall/js"
	"time"
)

// The page calls two functions of the global object credence; each
// returns its answer as a JSON string:
//
//	credence.verifyReceipt(genesisText, receiptText, credentialBytes | null)
//	credence.verifyStatus(genesisText, statusText, nowUnixMillis)
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
