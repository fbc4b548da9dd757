package app

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

func TestGenesisErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(g *Genesis)
		field string // must appear in the error
	}{
		{"no members", func(g *Genesis) { g.Members = nil }, "app_state.members"},
		{"max_batch_hashes beyond a transaction", func(g *Genesis) { g.Params.MaxBatchHashes = MaxBatchHashesLimit + 1 }, "app_state.params.max_batch_hashes"},
		{"max_batch_hashes 2^64-1", func(g *Genesis) { g.Params.MaxBatchHashes = 1<<64 - 1 }, "app_state.params.max_batch_hashes"},
		{"member id empty", func(g *Genesis) { g.Members[0].ID = "" }, "app_state.members[0].id"},
		{"member id with invalid characters", func(g *Genesis) { g.Members[0].ID = "Uni/1"; g.Issuers = nil }, "app_state.members[0].id"},
		{"duplicate member ids", func(g *Genesis) { g.Members = append(g.Members, g.Members[0]) }, "app_state.members[1].id"},
		{"member admin key not multibase", func(g *Genesis) { g.Members[0].AdminKey = "z0OIl" }, "app_state.members[0].admin_key"},
		{"member admin key empty", func(g *Genesis) { g.Members[0].AdminKey = "" }, "app_state.members[0].admin_key"},
		{"member admin key 31 bytes", func(g *Genesis) { g.Members[0].AdminKey = proof.FormatBinary(make([]byte, 31)) }, "app_state.members[0].admin_key"},
		{"member validator key bad", func(g *Genesis) { g.Members[0].ValidatorKey = "not a key" }, "app_state.members[0].validator_key"},
		{"member power zero", func(g *Genesis) { g.Members[0].Power = 0 }, "app_state.members[0].power"},
		{"member power negative", func(g *Genesis) { g.Members[0].Power = -3 }, "app_state.members[0].power"},
		{"issuer id invalid", func(g *Genesis) { g.Issuers[1].ID = "Beta!" }, "app_state.issuers[1].id"},
		{"duplicate issuer ids", func(g *Genesis) { g.Issuers[1].ID = alphaID }, "app_state.issuers[1].id"},
		{"issuer with unknown sponsor", func(g *Genesis) { g.Issuers[0].Sponsor = "other-uni" }, "app_state.issuers[0].sponsor"},
		{"issuer without sponsor", func(g *Genesis) { g.Issuers[1].Sponsor = "" }, "app_state.issuers[1].sponsor"},
		{"issuer sponsored by an issuer", func(g *Genesis) { g.Issuers[1].Sponsor = alphaID }, "app_state.issuers[1].sponsor"},
		{"issuer without keys", func(g *Genesis) { g.Issuers[0].Keys = nil }, "app_state.issuers[0].keys"},
		{"issuer key not multibase", func(g *Genesis) { g.Issuers[0].Keys[1].PublicKey = "z!!!" }, "app_state.issuers[0].keys[1].public_key"},
		{"issuer key 33 bytes", func(g *Genesis) { g.Issuers[1].Keys[0].PublicKey = hex.EncodeToString(make([]byte, 33)) }, "app_state.issuers[1].keys[0].public_key"},
		{"key window empty (to == from)", func(g *Genesis) { g.Issuers[1].Keys[0].ToHeight = 1 }, "app_state.issuers[1].keys[0]"},
		{"key window reversed", func(g *Genesis) { g.Issuers[0].Keys[1].ToHeight = 3 }, "app_state.issuers[0].keys[1]"},
		{"key window negative from", func(g *Genesis) { g.Issuers[0].Keys[0].FromHeight = -1 }, "app_state.issuers[0].keys[0]"},
		{"key window negative to", func(g *Genesis) { g.Issuers[0].Keys[0].ToHeight = -5 }, "app_state.issuers[0].keys[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testGenesisDoc()
			tc.mod(&g)
			n := newChain(t)
			_, err := n.app.InitChain(ctx, &abci.RequestInitChain{ChainId: testChainID, InitialHeight: 1, AppStateBytes: mustJSON(t, g)})
			if err == nil {
				t.Fatal("InitChain accepted the genesis")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
			// Nothing was written: a correct genesis still initialises the chain
			// to the same state as a fresh app's.
			got := n.initChain(mustJSON(t, testGenesisDoc()))
			want := newChain(t).initChain(mustJSON(t, testGenesisDoc()))
			if !bytes.Equal(got.AppHash, want.AppHash) {
				t.Error("a rejected genesis left state behind")
			}
		})
	}

	t.Run("not JSON", func(t *testing.T) {
		n := newChain(t)
		_, err := n.app.InitChain(ctx, &abci.RequestInitChain{ChainId: testChainID, AppStateBytes: []byte("{members:")})
		if err == nil || !strings.Contains(err.Error(), "app_state") {
			t.Errorf("InitChain: %v, want an app_state error", err)
		}
	})
	t.Run("empty app_state", func(t *testing.T) {
		n := newChain(t)
		_, err := n.app.InitChain(ctx, &abci.RequestInitChain{ChainId: testChainID})
		if err == nil || !strings.Contains(err.Error(), "app_state") {
			t.Errorf("InitChain: %v, want an app_state error", err)
		}
	})
	t.Run("chain id mismatch", func(t *testing.T) {
		n := newChain(t)
		_, err := n.app.InitChain(ctx, &abci.RequestInitChain{ChainId: "credence-other-1", AppStateBytes: mustJSON(t, testGenesisDoc())})
		if err == nil || !strings.Contains(err.Error(), "chain id") || !strings.Contains(err.Error(), "credence-other-1") {
			t.Errorf("InitChain: %v, want a chain id error", err)
		}
	})
}

func TestGenesisAccepted(t *testing.T) {
	t.Run("hex keys and a default max_batch_hashes", func(t *testing.T) {
		g := testGenesisDoc()
		g.Members[0].AdminKey = hex.EncodeToString(pubOf(memberAdminKey))
		g.Issuers[0].Keys[0].PublicKey = "0x" + hex.EncodeToString(pubOf(alpha1))
		g.Params.MaxBatchHashes = 0
		n := newChain(t)
		n.initChain(mustJSON(t, g))
		n.blockOK(anchor(t, testChainID, alphaID, 1, hashesN("big", testMaxHashes*4), alpha1))
		var p pb.Params
		if err := proto.Unmarshal(n.query("/key", []byte(proof.KeyParams), 0, false).Value, &p); err != nil || p.MaxBatchHashes != DefaultMaxBatchHashes {
			t.Errorf("params %v (%v), want the default max_batch_hashes", &p, err)
		}
		var m pb.Member
		if err := proto.Unmarshal(n.query("/key", proof.MemberKey(memberID), 0, false).Value, &m); err != nil || !bytes.Equal(m.AdminKey, pubOf(memberAdminKey)) || m.Power != 10 {
			t.Errorf("member %v (%v)", &m, err)
		}
	})
	t.Run("members only", func(t *testing.T) {
		g := testGenesisDoc()
		g.Issuers = nil
		n := newChain(t)
		n.initChain(mustJSON(t, g))
		res := n.block(anchor(t, testChainID, alphaID, 1, hashesN("x", 1), alpha1))
		if res.TxResults[0].Code != CodeUnknownSigner {
			t.Errorf("batch of an issuer not in genesis: code %d", res.TxResults[0].Code)
		}
	})
	t.Run("the same genesis gives the same app hash", func(t *testing.T) {
		a := newChain(t).initChain(mustJSON(t, testGenesisDoc()))
		b := newChain(t).initChain(mustJSON(t, testGenesisDoc()))
		if !bytes.Equal(a.AppHash, b.AppHash) {
			t.Error("InitChain is not deterministic")
		}
		g := testGenesisDoc()
		g.Issuers[0].Name = "Renamed"
		c := newChain(t).initChain(mustJSON(t, g))
		if bytes.Equal(a.AppHash, c.AppHash) {
			t.Error("the app hash does not depend on the genesis")
		}
	})
}

// TestGenesisRefusesSmallOrderKeys (regression): a small-order ed25519 key
// (e.g. the identity point) lets anyone forge signatures: Go's
// ed25519.Verify accepts (R = identity, S = 0) under the identity key for
// every message. Genesis must refuse such keys, and a transaction carrying
// one must not pass, or anyone could anchor as an issuer registered with it.
func TestGenesisRefusesSmallOrderKeys(t *testing.T) {
	identity := make([]byte, 32)
	identity[0] = 1
	// Another small-order point: (0, -1), y = p - 1.
	minusOne := []byte{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	for _, tc := range []struct {
		name  string
		key   []byte
		mod   func(g *Genesis, k string)
		field string
	}{
		{"issuer key identity", identity, func(g *Genesis, k string) { g.Issuers[1].Keys[0].PublicKey = k }, "app_state.issuers[1].keys[0].public_key"},
		{"issuer key (0,-1)", minusOne, func(g *Genesis, k string) { g.Issuers[0].Keys[1].PublicKey = k }, "app_state.issuers[0].keys[1].public_key"},
		{"member admin key identity", identity, func(g *Genesis, k string) { g.Members[0].AdminKey = k }, "app_state.members[0].admin_key"},
		{"member validator key identity", identity, func(g *Genesis, k string) { g.Members[0].ValidatorKey = k }, "app_state.members[0].validator_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testGenesisDoc()
			tc.mod(&g, proof.FormatBinary(tc.key))
			n := newChain(t)
			_, err := n.app.InitChain(ctx, &abci.RequestInitChain{ChainId: testChainID, InitialHeight: 1, AppStateBytes: mustJSON(t, g)})
			if err == nil {
				t.Fatal("InitChain accepted a small-order key")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
		})
	}
	t.Run("transaction with a forged signature under the identity key", func(t *testing.T) {
		n := start(t)
		body, err := proto.Marshal(anchorBody(betaID, 1, hashesN("forged", 2)))
		if err != nil {
			t.Fatal(err)
		}
		forgedSig := make([]byte, 64)
		forgedSig[0] = 1 // R = identity, S = 0
		tx := envelope(t, body, identity, forgedSig)
		if r := n.checkTx(tx); r.Code == CodeOK {
			t.Error("CheckTx accepted a forged transaction")
		}
		if res := n.block(tx); res.TxResults[0].Code == CodeOK {
			t.Error("FinalizeBlock accepted a forged transaction")
		}
	})
}
