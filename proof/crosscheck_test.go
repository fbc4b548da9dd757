package proof

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	cmtversionpb "github.com/cometbft/cometbft/proto/tendermint/version"
	cmttypes "github.com/cometbft/cometbft/types"
	cmtversion "github.com/cometbft/cometbft/version"
)

// The package implements CometBFT's header hash, validator-set hash, vote
// sign-bytes and commit verification from docs/receipt.md. These tests
// compare each with CometBFT's own functions on random inputs: CometBFT is
// imported here only.

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// randomHashOrEmpty is a 32-byte hash, or (sometimes) nothing.
func randomHashOrEmpty(rng *rand.Rand) []byte {
	if rng.IntN(5) == 0 {
		return nil
	}
	return randBytes(rng, 32)
}

func randomTime(rng *rand.Rand) time.Time {
	switch rng.IntN(4) {
	case 0:
		return time.Unix(rng.Int64N(1<<31), 0).UTC() // whole seconds: nanos left out
	case 1:
		return time.Unix(0, rng.Int64N(1e9)).UTC() // seconds 0: left out
	}
	return time.Unix(rng.Int64N(1<<33), rng.Int64N(1e9)).UTC()
}

type testChain struct {
	chainID string
	privs   []cmted25519.PrivKey
	set     *cmttypes.ValidatorSet
}

func newTestChain(rng *rand.Rand, n int) *testChain {
	c := &testChain{chainID: fmt.Sprintf("chain-%d", rng.IntN(1000))}
	var vals []*cmttypes.Validator
	byAddr := map[string]cmted25519.PrivKey{}
	for range n {
		pk := cmted25519.GenPrivKeyFromSecret(randBytes(rng, 32))
		// Equal powers exercise the address order.
		vals = append(vals, cmttypes.NewValidator(pk.PubKey(), 1+rng.Int64N(3)*10))
		byAddr[string(pk.PubKey().Address())] = pk
	}
	c.set = cmttypes.NewValidatorSet(vals)
	for _, v := range c.set.Validators {
		c.privs = append(c.privs, byAddr[string(v.Address)])
	}
	return c
}

func (c *testChain) validators() []*Validator {
	out := make([]*Validator, len(c.set.Validators))
	for i, v := range c.set.Validators {
		out[i] = &Validator{Ed25519PublicKey: v.PubKey.Bytes(), VotingPower: v.VotingPower}
	}
	return out
}

func (c *testChain) randomHeader(rng *rand.Rand) *cmttypes.Header {
	return &cmttypes.Header{
		Version: cmtversionpb.Consensus{Block: cmtversion.BlockProtocol, App: rng.Uint64N(3)},
		ChainID: c.chainID,
		Height:  1 + rng.Int64N(1<<40),
		Time:    randomTime(rng),
		LastBlockID: cmttypes.BlockID{Hash: randomHashOrEmpty(rng),
			PartSetHeader: cmttypes.PartSetHeader{Total: rng.Uint32N(3), Hash: randomHashOrEmpty(rng)}},
		LastCommitHash:     randomHashOrEmpty(rng),
		DataHash:           randomHashOrEmpty(rng),
		ValidatorsHash:     c.set.Hash(),
		NextValidatorsHash: c.set.Hash(),
		ConsensusHash:      randBytes(rng, 32),
		AppHash:            randBytes(rng, 1+rng.IntN(40)),
		LastResultsHash:    randomHashOrEmpty(rng),
		EvidenceHash:       randomHashOrEmpty(rng),
		ProposerAddress:    c.set.Validators[rng.IntN(c.set.Size())].Address,
	}
}

// commit signs h by each validator with a random flag: mostly commit
// votes, some nil votes, some absent.
func (c *testChain) commit(rng *rand.Rand, h *cmttypes.Header) *cmttypes.Commit {
	id := cmttypes.BlockID{Hash: h.Hash(), PartSetHeader: cmttypes.PartSetHeader{Total: 1 + rng.Uint32N(5), Hash: randBytes(rng, 32)}}
	cm := &cmttypes.Commit{Height: h.Height, Round: int32(rng.IntN(3)), BlockID: id}
	for i, v := range c.set.Validators {
		flag := cmttypes.BlockIDFlagCommit
		switch rng.IntN(8) {
		case 0:
			flag = cmttypes.BlockIDFlagNil
		case 1:
			cm.Signatures = append(cm.Signatures, cmttypes.NewCommitSigAbsent())
			continue
		}
		vote := &cmttypes.Vote{Type: cmtproto.PrecommitType, Height: cm.Height, Round: cm.Round, Timestamp: randomTime(rng),
			ValidatorAddress: v.Address, ValidatorIndex: int32(i)}
		if flag == cmttypes.BlockIDFlagCommit {
			vote.BlockID = id
		}
		sig, err := c.privs[i].Sign(cmttypes.VoteSignBytes(c.chainID, vote.ToProto()))
		if err != nil {
			panic(err)
		}
		cm.Signatures = append(cm.Signatures, cmttypes.CommitSig{BlockIDFlag: flag, ValidatorAddress: v.Address, Timestamp: vote.Timestamp, Signature: sig})
	}
	return cm
}

func encodeSignedHeader(tb testing.TB, h *cmttypes.Header, cm *cmttypes.Commit) []byte {
	tb.Helper()
	sh := &cmttypes.SignedHeader{Header: h, Commit: cm}
	raw, err := sh.ToProto().Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// cometAccepts is CometBFT's verdict on a signed header for set: decoding,
// ValidateBasic, and VerifyCommit (which checks every signature present,
// and more than 2/3 of the power for the block).
func cometAccepts(raw []byte, set *cmttypes.ValidatorSet, chainID string) error {
	var p cmtproto.SignedHeader
	if err := p.Unmarshal(raw); err != nil {
		return err
	}
	sh, err := cmttypes.SignedHeaderFromProto(&p)
	if err != nil {
		return err
	}
	if err := sh.ValidateBasic(chainID); err != nil {
		return err
	}
	return set.VerifyCommit(chainID, sh.Commit.BlockID, sh.Height, sh.Commit)
}

func ourAccepts(raw []byte, set *validatorSet, chainID string) error {
	sh, err := decodeSignedHeader(raw, DefaultMaxValidators)
	if err != nil {
		return err
	}
	if _, err := sh.checkHeader(chainID); err != nil {
		return err
	}
	return verifyCommit(set, sh, chainID)
}

// TestCrossCheckCometBFT compares, on random chains, headers and commits:
// the encoding CometBFT writes is canonical to us; header hash, set hash
// and every vote's sign-bytes are CometBFT's; and commit verification
// agrees with CometBFT's VerifyCommit, also on commits changed in the ways
// a forger would try.
func TestCrossCheckCometBFT(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	agreeAccept, agreeReject := 0, 0
	for iter := 0; iter < 150; iter++ {
		c := newTestChain(rng, 1+rng.IntN(7))
		vs := c.validators()
		set, err := newValidatorSet(vs, DefaultMaxValidators)
		if err != nil {
			t.Fatalf("CometBFT's set %v: %v", c.set, err)
		}
		if !bytes.Equal(set.hash[:], c.set.Hash()) {
			t.Fatalf("set hash %X, CometBFT %X", set.hash, c.set.Hash())
		}
		h := c.randomHeader(rng)
		cm := c.commit(rng, h)
		raw := encodeSignedHeader(t, h, cm)
		sh, err := decodeSignedHeader(raw, DefaultMaxValidators)
		if err != nil {
			t.Fatalf("CometBFT's encoding refused: %v", err)
		}
		if got := sh.header.hash(); !bytes.Equal(got[:], h.Hash()) {
			t.Fatalf("header hash %X, CometBFT %X", got, h.Hash())
		}
		for i := range sh.commit.sigs {
			if cm.Signatures[i].BlockIDFlag == cmttypes.BlockIDFlagAbsent {
				continue
			}
			got := sh.commit.voteSignBytes(c.chainID, &sh.commit.sigs[i])
			if want := cm.VoteSignBytes(c.chainID, int32(i)); !bytes.Equal(got, want) {
				t.Fatalf("sign bytes of vote %d:\n got %x\nwant %x", i, got, want)
			}
		}

		// The commit as signed, then changed one way at a time.
		variants := [][]byte{raw}
		for _, change := range commitChanges {
			h2 := *h
			cm2 := *cm
			cm2.Signatures = append([]cmttypes.CommitSig(nil), cm.Signatures...)
			if change(rng, &h2, &cm2) {
				variants = append(variants, encodeSignedHeader(t, &h2, &cm2))
			}
		}
		for k, v := range variants {
			theirs := cometAccepts(v, c.set, c.chainID)
			ours := ourAccepts(v, set, c.chainID)
			if (theirs == nil) != (ours == nil) {
				t.Fatalf("chain %d variant %d: CometBFT %v, proof %v", iter, k, theirs, ours)
			}
			if ours == nil {
				agreeAccept++
			} else {
				agreeReject++
			}
		}
	}
	t.Logf("CometBFT and proof agree: %d signed headers accepted, %d refused", agreeAccept, agreeReject)
	if agreeAccept < 50 || agreeReject < 500 {
		t.Errorf("too few cases of each kind (%d accepted, %d refused)", agreeAccept, agreeReject)
	}
}

// commitChanges are forgeries of a signed header; each reports whether it
// applied. The header's hash is not recomputed into the commit unless
// said: CometBFT and proof must both see the mismatch.
var commitChanges = []func(rng *rand.Rand, h *cmttypes.Header, cm *cmttypes.Commit) bool{
	// A signature byte.
	func(rng *rand.Rand, _ *cmttypes.Header, cm *cmttypes.Commit) bool {
		i := rng.IntN(len(cm.Signatures))
		if cm.Signatures[i].BlockIDFlag == cmttypes.BlockIDFlagAbsent {
			return false
		}
		sig := bytes.Clone(cm.Signatures[i].Signature)
		sig[rng.IntN(len(sig))] ^= byte(1 + rng.IntN(255))
		cm.Signatures[i].Signature = sig
		return true
	},
	// A signature's timestamp.
	func(rng *rand.Rand, _ *cmttypes.Header, cm *cmttypes.Commit) bool {
		i := rng.IntN(len(cm.Signatures))
		if cm.Signatures[i].BlockIDFlag == cmttypes.BlockIDFlagAbsent {
			return false
		}
		cm.Signatures[i].Timestamp = cm.Signatures[i].Timestamp.Add(time.Duration(1 + rng.IntN(1000)))
		return true
	},
	// A commit vote turned into a nil vote, or the other way.
	func(rng *rand.Rand, _ *cmttypes.Header, cm *cmttypes.Commit) bool {
		i := rng.IntN(len(cm.Signatures))
		switch cm.Signatures[i].BlockIDFlag {
		case cmttypes.BlockIDFlagCommit:
			cm.Signatures[i].BlockIDFlag = cmttypes.BlockIDFlagNil
		case cmttypes.BlockIDFlagNil:
			cm.Signatures[i].BlockIDFlag = cmttypes.BlockIDFlagCommit
		default:
			return false
		}
		return true
	},
	// A signature dropped to absent (more than 2/3 may still remain).
	func(rng *rand.Rand, _ *cmttypes.Header, cm *cmttypes.Commit) bool {
		i := rng.IntN(len(cm.Signatures))
		cm.Signatures[i] = cmttypes.NewCommitSigAbsent()
		return true
	},
	// An absent signature with a timestamp.
	func(rng *rand.Rand, _ *cmttypes.Header, cm *cmttypes.Commit) bool {
		i := rng.IntN(len(cm.Signatures))
		cm.Signatures[i] = cmttypes.NewCommitSigAbsent()
		cm.Signatures[i].Timestamp = time.Unix(1, 0)
		return true
	},
	// Two signatures swapped.
	func(rng *rand.Rand, _ *cmttypes.Header, cm *cmttypes.Commit) bool {
		if len(cm.Signatures) < 2 {
			return false
		}
		i := rng.IntN(len(cm.Signatures) - 1)
		cm.Signatures[i], cm.Signatures[i+1] = cm.Signatures[i+1], cm.Signatures[i]
		return true
	},
	// The round.
	func(_ *rand.Rand, _ *cmttypes.Header, cm *cmttypes.Commit) bool {
		cm.Round++
		return true
	},
	// The part set header of the block id.
	func(_ *rand.Rand, _ *cmttypes.Header, cm *cmttypes.Commit) bool {
		cm.BlockID.PartSetHeader.Total++
		return true
	},
	// A header field, the commit still for the old hash.
	func(rng *rand.Rand, h *cmttypes.Header, _ *cmttypes.Commit) bool {
		h.AppHash = randBytes(rng, 32)
		return true
	},
	// A header field, the commit's block id following it (the votes do
	// not).
	func(rng *rand.Rand, h *cmttypes.Header, cm *cmttypes.Commit) bool {
		h.Time = h.Time.Add(time.Nanosecond)
		cm.BlockID.Hash = h.Hash()
		return true
	},
	// A signature missing.
	func(_ *rand.Rand, _ *cmttypes.Header, cm *cmttypes.Commit) bool {
		cm.Signatures = cm.Signatures[:len(cm.Signatures)-1]
		return true
	},
}
