package proof

import (
	"os"
	"testing"
	"fmt"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
)

func TestZZExplore2(t *testing.T) {
	js, _ := os.ReadFile("testdata/receipt.json")
	r, _ := UnmarshalReceiptJSON(js)
	g, _ := os.ReadFile("testdata/genesis.json")
	tr, _ := TrustRootFromGenesis(g)
	var p cmtproto.SignedHeader
	if err := p.Unmarshal(r.SignedHeader); err != nil { t.Fatal(err) }
	fmt.Printf("%+v\n", p.Commit)
	s := p.Commit.Signatures[0]
	s.ValidatorAddress = make([]byte, 20)
	p.Commit.Signatures = append(p.Commit.Signatures, s)
	r.SignedHeader, _ = p.Marshal()
	func() {
		defer func() { fmt.Println("recovered:", recover()) }()
		_, err := Verify(r, tr)
		fmt.Println("err", err)
	}()
	func() {
		defer func() { fmt.Println("recovered:", recover()) }()
		_, err := TrustRootFromGenesis([]byte(`{"chain_id":"x","validators":[{"power":"10"}]}`))
		fmt.Println("err", err)
	}()
}
