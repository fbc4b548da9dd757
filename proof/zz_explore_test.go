package proof

import (
	"os"
	"testing"
	"fmt"

	"google.golang.org/protobuf/proto"
)

func TestZZExplore(t *testing.T) {
	js, _ := os.ReadFile("testdata/receipt.json")
	r, err := UnmarshalReceiptJSON(js)
	if err != nil { t.Fatal(err) }
	g, _ := os.ReadFile("testdata/genesis.json")
	tr, err := TrustRootFromGenesis(g)
	if err != nil { t.Fatal(err) }
	v, err := Verify(r, tr)
	fmt.Printf("%+v %v\n", v, err)
	enc, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	fmt.Println(len(enc), len(r.SignedHeader), len(r.BatchProof))
	fmt.Printf("% x\n", enc[:120])
	for i := range enc {
		for _, x := range []byte{1, 0x80, 0xff} {
			m := append([]byte(nil), enc...)
			m[i] ^= x
			var r2 Receipt
			if proto.Unmarshal(m, &r2) != nil { continue }
			if _, err := Verify(&r2, tr); err == nil {
				fmt.Printf("VERIFIES pos %d xor %02x orig %02x\n", i, x, enc[i])
			}
		}
	}
}
