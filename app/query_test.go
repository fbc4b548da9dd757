package app

import (
	"bytes"
	"testing"

	ics23 "github.com/cosmos/ics23/go"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

func TestInfo(t *testing.T) {
	n := newChain(t)
	if info := n.info(); info.LastBlockHeight != 0 || info.AppVersion != baseVersion || info.Version != Version {
		t.Errorf("Info of a fresh app: %+v", info)
	}
	n.initChain(mustJSON(t, testGenesisDoc()))
	if info := n.info(); info.LastBlockHeight != 0 {
		t.Errorf("Info after InitChain: height %d, want 0", info.LastBlockHeight)
	}
	for h := int64(1); h <= 4; h++ {
		n.blockOK(anchor(t, testChainID, alphaID, uint64(h), hashesN("info"+itoa(h), int(h)), alpha1))
		info := n.info()
		if info.LastBlockHeight != h {
			t.Errorf("after %d blocks: LastBlockHeight %d", h, info.LastBlockHeight)
		}
		if !bytes.Equal(info.LastBlockAppHash, n.appHash[h]) {
			t.Errorf("after %d blocks: LastBlockAppHash %x, want FinalizeBlock's %x", h, info.LastBlockAppHash, n.appHash[h])
		}
	}
	t.Run("after reopen", func(t *testing.T) {
		n.reopen()
		info := n.info()
		if info.LastBlockHeight != 4 || !bytes.Equal(info.LastBlockAppHash, n.appHash[4]) {
			t.Fatalf("Info after reopen: height %d hash %x; want 4, %x", info.LastBlockHeight, info.LastBlockAppHash, n.appHash[4])
		}
		// Params are read back from state: max_batch_hashes still applies.
		over := anchor(t, testChainID, alphaID, 5, hashesN("over", testMaxHashes+1), alpha1)
		if r := n.checkTx(over); r.Code != CodeTooLarge {
			t.Errorf("after reopen, a batch over max_batch_hashes: code %d, want too large", r.Code)
		}
		n.blockOK(anchor(t, testChainID, alphaID, 5, hashesN("after", 2), alpha1))
		if info := n.info(); info.LastBlockHeight != 5 || !bytes.Equal(info.LastBlockAppHash, n.appHash[5]) {
			t.Errorf("Info after a block on the reopened app: %d %x", info.LastBlockHeight, info.LastBlockAppHash)
		}
	})
}

func TestQuery(t *testing.T) {
	n := start(t)
	n.blockOK(anchor(t, testChainID, alphaID, 1, hashesN("q1", 2), alpha1))
	n.block()
	n.blockOK(anchor(t, testChainID, alphaID, 2, hashesN("q3", 2), alpha1))

	key1, key2 := proof.BatchKey(alphaID, 1), proof.BatchKey(alphaID, 2)
	t.Run("membership", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			key    []byte
			height int64
			want   int64
		}{
			{"latest", key1, 0, 3},
			{"at its own height", key1, 1, 1},
			{"at a later height", key1, 2, 2},
			{"second batch at latest", key2, 3, 3},
			{"issuer record", proof.IssuerKey(alphaID), 1, 1},
			{"member record", proof.MemberKey(memberID), 2, 2},
			{"params", []byte(proof.KeyParams), 0, 3},
			{"sequence", proof.IssuerSequenceKey(alphaID), 3, 3},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := n.query("/key", tc.key, tc.height, true)
				if res.Code != CodeOK || res.Value == nil {
					t.Fatalf("code %d value %x log %q", res.Code, res.Value, res.Log)
				}
				if res.Height != tc.want || !bytes.Equal(res.Key, tc.key) {
					t.Errorf("height %d key %q; want %d %q", res.Height, res.Key, tc.want, tc.key)
				}
				if res.ProofOps == nil || len(res.ProofOps.Ops) != 1 {
					t.Fatalf("proof ops: %v", res.ProofOps)
				}
				verifyMembership(t, n.appHash[tc.want], res.ProofOps.Ops[0].Data, tc.key, res.Value)
				// And not against another height's hash when the state differs.
				if other := n.appHash[tc.want%3+1]; !bytes.Equal(other, n.appHash[tc.want]) {
					if ics23.VerifyMembership(ics23.IavlSpec, other, unmarshalProof(t, res.ProofOps.Ops[0].Data), tc.key, res.Value) {
						t.Error("proof verifies against another height's app hash")
					}
				}
				if ics23.VerifyMembership(ics23.IavlSpec, n.appHash[tc.want], unmarshalProof(t, res.ProofOps.Ops[0].Data), tc.key, append(bytes.Clone(res.Value), 0)) {
					t.Error("proof verifies for another value")
				}
			})
		}
	})

	t.Run("values decode", func(t *testing.T) {
		var is pb.Issuer
		if err := proto.Unmarshal(n.query("/key", proof.IssuerKey(alphaID), 0, false).Value, &is); err != nil {
			t.Fatal(err)
		}
		if is.Id != alphaID || is.Sponsor != memberID || len(is.Keys) != 2 || !bytes.Equal(is.Keys[1].PublicKey, pubOf(alpha2)) || is.Keys[1].FromHeight != alpha2From || is.Status != pb.IssuerStatus_ISSUER_STATUS_ACTIVE {
			t.Errorf("issuer record %v", &is)
		}
		var p pb.Params
		if err := proto.Unmarshal(n.query("/key", []byte(proof.KeyParams), 0, false).Value, &p); err != nil || p.MaxBatchHashes != testMaxHashes {
			t.Errorf("params %v, %v", &p, err)
		}
		if res := n.query("/key", key1, 0, false); res.ProofOps != nil {
			t.Error("proof returned without Prove")
		}
	})

	t.Run("non-membership", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			key    []byte
			height int64
			want   int64
		}{
			{"batch never anchored", proof.BatchKey(alphaID, 99), 0, 3},
			{"batch anchored later", key2, 2, 2},
			{"unknown issuer", proof.IssuerKey("nobody"), 3, 3},
			{"before every key", []byte{0x00}, 0, 3},
			{"after every key", []byte{0xff, 0xff}, 1, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := n.query("/key", tc.key, tc.height, true)
				if res.Code != CodeOK || res.Value != nil || res.Height != tc.want {
					t.Fatalf("code %d value %x height %d log %q", res.Code, res.Value, res.Height, res.Log)
				}
				if res.ProofOps == nil || len(res.ProofOps.Ops) != 1 {
					t.Fatalf("proof ops: %v", res.ProofOps)
				}
				p := unmarshalProof(t, res.ProofOps.Ops[0].Data)
				if !ics23.VerifyNonMembership(ics23.IavlSpec, n.appHash[tc.want], p, tc.key) {
					t.Errorf("non-membership proof of %q does not verify at height %d", tc.key, tc.want)
				}
			})
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			path   string
			key    []byte
			height int64
		}{
			{"unknown path", "/store/batch", key1, 0},
			{"empty path", "", key1, 0},
			{"path without slash", "key", key1, 0},
			{"empty key", "/key", nil, 0},
			{"future height", "/key", key1, 4},
			{"negative height", "/key", key1, -1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := n.query(tc.path, tc.key, tc.height, true)
				if res.Code == CodeOK {
					t.Errorf("code OK, value %x", res.Value)
				}
				if res.Log == "" {
					t.Error("error without log")
				}
			})
		}
	})
}

func TestQueryBeforeFirstBlock(t *testing.T) {
	n := start(t)
	if res := n.query("/key", proof.IssuerKey(alphaID), 0, true); res.Code == CodeOK {
		t.Errorf("query with no committed state: code OK, value %x", res.Value)
	}
}
