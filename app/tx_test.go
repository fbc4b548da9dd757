package app

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// ruleCase is one rejected transaction. The chain is the test genesis with
// the blocks of prior committed (each prior block's transactions must all be
// accepted), then empty blocks up to height at-1; the block at height at
// holds good (a valid transaction) then bad.
type ruleCase struct {
	name  string
	at    int64
	prior func(t testing.TB) [][]byte
	good  func(t testing.TB) []byte
	bad   func(t testing.TB) []byte
	code  uint32
	// relative: bad is rejected only because good precedes it in the block
	// (or the mempool), so it is not checked alone.
	relative bool
}

// The transactions the rule cases are built from.
var (
	hashesA = hashesN("a", 5)
	hashesB = hashesN("b", 3)
)

func alphaTx(seq uint64, hashes []byte) func(testing.TB) []byte {
	return func(t testing.TB) []byte { return anchor(t, testChainID, alphaID, seq, hashes, alpha1) }
}

func priorTxs(txs ...func(testing.TB) []byte) func(testing.TB) [][]byte {
	return func(t testing.TB) [][]byte {
		out := make([][]byte, len(txs))
		for i, f := range txs {
			out[i] = f(t)
		}
		return out
	}
}

// withBody returns a bad transaction: the correct body of alpha's batch 2,
// changed by mod, signed by alpha1.
func withBody(mod func(b *pb.TxBody)) func(testing.TB) []byte {
	return func(t testing.TB) []byte {
		b := anchorBody(alphaID, 2, hashesB)
		mod(b)
		return rawTx(t, b, pubOf(alpha1), alpha1)
	}
}

// withEnvelope returns a bad transaction: the correct envelope of alpha's
// batch 2, changed by mod.
func withEnvelope(mod func(e *pb.Tx)) func(testing.TB) []byte {
	return func(t testing.TB) []byte {
		var e pb.Tx
		if err := proto.Unmarshal(anchor(t, testChainID, alphaID, 2, hashesB, alpha1), &e); err != nil {
			t.Fatal(err)
		}
		mod(&e)
		raw, err := proto.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
}

func constTx(raw []byte) func(testing.TB) []byte { return func(testing.TB) []byte { return raw } }

func ruleCases() []ruleCase {
	otherRoot := sha256.Sum256([]byte("not the root"))
	swapped := append(append([]byte{}, hashesB[32:64]...), hashesB[:32]...)
	swapped = append(swapped, hashesB[64:]...)
	tooBig := hashesN("big", MaxTxBytes/proof.HashSize+1)

	return []ruleCase{
		// Chain id.
		{name: "wrong chain id", bad: func(t testing.TB) []byte {
			return anchor(t, "credence-other-1", alphaID, 2, hashesB, alpha1)
		}, code: CodeWrongChain},
		{name: "empty chain id", bad: withBody(func(b *pb.TxBody) { b.ChainId = "" }), code: CodeWrongChain},
		{name: "chain id differs in case", bad: withBody(func(b *pb.TxBody) { b.ChainId = strings.ToUpper(testChainID) }), code: CodeWrongChain},

		// Signatures.
		{name: "signature of another body", bad: func(t testing.TB) []byte {
			other, err := proto.Marshal(anchorBody(alphaID, 2, hashesA))
			if err != nil {
				t.Fatal(err)
			}
			body, err := proto.Marshal(anchorBody(alphaID, 2, hashesB))
			if err != nil {
				t.Fatal(err)
			}
			return envelope(t, body, pubOf(alpha1), ed25519.Sign(alpha1, SignBytes(other)))
		}, code: CodeBadSignature},
		{name: "signed by a key other than the one carried", bad: func(t testing.TB) []byte {
			return rawTx(t, anchorBody(alphaID, 2, hashesB), pubOf(alpha1), beta1)
		}, code: CodeBadSignature},
		{name: "signature without the domain separator", bad: func(t testing.TB) []byte {
			body, err := proto.Marshal(anchorBody(alphaID, 2, hashesB))
			if err != nil {
				t.Fatal(err)
			}
			return envelope(t, body, pubOf(alpha1), ed25519.Sign(alpha1, body))
		}, code: CodeBadSignature},
		{name: "signature with a flipped bit", bad: withEnvelope(func(e *pb.Tx) { e.Signature[10] ^= 0x04 }), code: CodeBadSignature},
		{name: "body changed after signing", bad: withEnvelope(func(e *pb.Tx) { e.Body[len(e.Body)-1] ^= 0x01 }), code: CodeBadSignature},

		// Signer and key authorisation.
		{name: "key of another issuer", bad: func(t testing.TB) []byte {
			return anchor(t, testChainID, alphaID, 2, hashesB, beta1)
		}, code: CodeUnauthorized},
		{name: "key registered to no issuer", bad: func(t testing.TB) []byte {
			return anchor(t, testChainID, alphaID, 2, hashesB, strangerKey)
		}, code: CodeUnauthorized},
		{name: "member admin key signing as issuer", bad: func(t testing.TB) []byte {
			return anchor(t, testChainID, alphaID, 2, hashesB, memberAdminKey)
		}, code: CodeUnauthorized},
		{name: "unknown issuer", bad: func(t testing.TB) []byte {
			return anchor(t, testChainID, "nobody", 1, hashesB, strangerKey)
		}, code: CodeUnknownSigner},
		{name: "member id as issuer", bad: func(t testing.TB) []byte {
			return anchor(t, testChainID, memberID, 1, hashesB, memberAdminKey)
		}, code: CodeUnknownSigner},
		{name: "key before its from_height", at: alpha2From - 1, bad: func(t testing.TB) []byte {
			return anchor(t, testChainID, alphaID, 2, hashesB, alpha2)
		}, code: CodeUnauthorized},
		{name: "key at its to_height", at: betaTo, bad: func(t testing.TB) []byte {
			return anchor(t, testChainID, betaID, 1, hashesB, beta1)
		}, code: CodeUnauthorized},
		{name: "key after its to_height", at: betaTo + 3, bad: func(t testing.TB) []byte {
			return anchor(t, testChainID, betaID, 1, hashesB, beta1)
		}, code: CodeUnauthorized},

		// Batch contents.
		{name: "wrong root", bad: withBody(func(b *pb.TxBody) { b.GetAnchorBatch().Root = otherRoot[:] }), code: CodeBadRoot},
		{name: "root of the leaves in another order", bad: withBody(func(b *pb.TxBody) { b.GetAnchorBatch().Hashes = swapped }), code: CodeBadRoot},
		{name: "root of a prefix of the leaves", bad: withBody(func(b *pb.TxBody) {
			r, _ := proof.Root(hashesB[:64])
			b.GetAnchorBatch().Root = r[:]
		}), code: CodeBadRoot},
		{name: "root is 31 bytes", bad: withBody(func(b *pb.TxBody) { b.GetAnchorBatch().Root = b.GetAnchorBatch().Root[:31] }), code: CodeMalformed},
		{name: "root missing", bad: withBody(func(b *pb.TxBody) { b.GetAnchorBatch().Root = nil }), code: CodeMalformed},
		{name: "hashes not a multiple of 32 (33 bytes)", bad: withBody(func(b *pb.TxBody) { b.GetAnchorBatch().Hashes = hashesN("x", 2)[:33] }), code: CodeMalformed},
		{name: "hashes not a multiple of 32 (31 bytes)", bad: withBody(func(b *pb.TxBody) { b.GetAnchorBatch().Hashes = hashesN("x", 1)[:31] }), code: CodeMalformed},
		{name: "hashes not a multiple of 32 (3 hashes plus 1 byte)", bad: withBody(func(b *pb.TxBody) {
			b.GetAnchorBatch().Hashes = append(append([]byte{}, hashesB...), 0)
		}), code: CodeMalformed},
		{name: "empty hashes", bad: withBody(func(b *pb.TxBody) { b.GetAnchorBatch().Hashes = nil }), code: CodeMalformed},
		{name: "empty anchor_batch message", bad: withBody(func(b *pb.TxBody) { b.Msg = &pb.TxBody_AnchorBatch{AnchorBatch: &pb.AnchorBatch{}} }), code: CodeMalformed},
		{name: "too many hashes (max+1)", bad: func(t testing.TB) []byte {
			return anchor(t, testChainID, alphaID, 2, hashesN("x", testMaxHashes+1), alpha1)
		}, code: CodeTooLarge},
		{name: "too many hashes (4x max)", bad: func(t testing.TB) []byte {
			return anchor(t, testChainID, alphaID, 2, hashesN("x", 4*testMaxHashes), alpha1)
		}, code: CodeTooLarge},
		{name: "transaction over MaxTxBytes", bad: func(t testing.TB) []byte {
			return rawTx(t, anchorBody(alphaID, 2, tooBig), pubOf(alpha1), alpha1)
		}, code: CodeTooLarge},

		// Replay and sequences.
		{name: "replay in the same block", good: alphaTx(1, hashesA), bad: alphaTx(1, hashesA), code: CodeReplay, relative: true},
		{name: "same sequence, other batch, same block", good: alphaTx(1, hashesA), bad: alphaTx(1, hashesB), code: CodeReplay, relative: true},
		{name: "lower sequence in the same block", good: alphaTx(3, hashesA), bad: alphaTx(2, hashesB), code: CodeReplay, relative: true},
		{name: "replay in a later block", at: 2, prior: priorTxs(alphaTx(1, hashesA)),
			good: alphaTx(2, hashesB), bad: alphaTx(1, hashesA), code: CodeReplay},
		{name: "replay several blocks later", at: 7, prior: priorTxs(alphaTx(1, hashesA)),
			good: alphaTx(2, hashesB), bad: alphaTx(1, hashesA), code: CodeReplay},
		{name: "sequence lower than the last", at: 2, prior: priorTxs(alphaTx(5, hashesA)),
			good: alphaTx(6, hashesB), bad: alphaTx(3, hashesB), code: CodeReplay},
		{name: "sequence equal to the last, other batch", at: 2, prior: priorTxs(alphaTx(5, hashesA)),
			good: alphaTx(6, hashesB), bad: alphaTx(5, hashesB), code: CodeReplay},
		// A signature at 2^64-1 would leave the account no sequence to use.
		{name: "sequence 2^64-1", bad: alphaTx(math.MaxUint64, hashesB), code: CodeSequenceJump},
		{name: "sequence one past the step above the good one", bad: alphaTx(1+MaxSequenceStep+1, hashesB), code: CodeSequenceJump},
		{name: "sequence one past the step above the last", at: 2, prior: priorTxs(alphaTx(5, hashesA)),
			good: alphaTx(6, hashesB), bad: alphaTx(6+MaxSequenceStep+1, hashesB), code: CodeSequenceJump},

		// Encoding.
		{name: "malformed envelope bytes", bad: constTx([]byte{0xff, 0xff, 0xff, 0xff}), code: CodeMalformed},
		{name: "truncated envelope", bad: func(t testing.TB) []byte {
			raw := anchor(t, testChainID, alphaID, 2, hashesB, alpha1)
			return raw[:len(raw)/2]
		}, code: CodeMalformed},
		{name: "empty transaction", bad: constTx(nil), code: CodeMalformed},
		{name: "body is not a TxBody", bad: func(t testing.TB) []byte {
			body := []byte{0x0a, 0xff, 0x01} // field 1, length 255, 1 byte
			return envelope(t, body, pubOf(alpha1), ed25519.Sign(alpha1, SignBytes(body)))
		}, code: CodeMalformed},
		{name: "missing message", bad: withBody(func(b *pb.TxBody) { b.Msg = nil }), code: CodeMalformed},
		{name: "public key 31 bytes", bad: withEnvelope(func(e *pb.Tx) { e.PublicKey = e.PublicKey[:31] }), code: CodeMalformed},
		{name: "public key 33 bytes", bad: withEnvelope(func(e *pb.Tx) { e.PublicKey = append(e.PublicKey, 0) }), code: CodeMalformed},
		{name: "public key missing", bad: withEnvelope(func(e *pb.Tx) { e.PublicKey = nil }), code: CodeMalformed},
		{name: "signature 63 bytes", bad: withEnvelope(func(e *pb.Tx) { e.Signature = e.Signature[:63] }), code: CodeMalformed},
		{name: "signature missing", bad: withEnvelope(func(e *pb.Tx) { e.Signature = nil }), code: CodeMalformed},
		{name: "sequence 0", bad: withBody(func(b *pb.TxBody) { b.Sequence = 0 }), code: CodeMalformed},
		// A copy with bytes appended would execute under another hash and
		// turn the signer's own transaction into a replay.
		{name: "unknown field appended to the envelope", bad: func(t testing.TB) []byte {
			return append(anchor(t, testChainID, alphaID, 2, hashesB, alpha1), 0xf8, 0x07, 0x01) // field 127, varint 1
		}, code: CodeMalformed},
		{name: "unknown field in the signed body", bad: func(t testing.TB) []byte {
			body, err := deterministic.Marshal(anchorBody(alphaID, 2, hashesB))
			if err != nil {
				t.Fatal(err)
			}
			body = append(body, 0xf8, 0x07, 0x01)
			return envelope(t, body, pubOf(alpha1), ed25519.Sign(alpha1, SignBytes(body)))
		}, code: CodeMalformed},
		{name: "unknown field inside the batch message", bad: func(t testing.TB) []byte {
			b := anchorBody(alphaID, 2, hashesB)
			b.GetAnchorBatch().ProtoReflect().SetUnknown(protoreflect.RawFields{0xf8, 0x07, 0x01})
			return rawTx(t, b, pubOf(alpha1), alpha1)
		}, code: CodeMalformed},
		{name: "body not in canonical encoding", bad: func(t testing.TB) []byte {
			// The sequence's varint padded with a redundant continuation byte.
			body, err := deterministic.Marshal(&pb.TxBody{ChainId: testChainID, Signer: alphaID})
			if err != nil {
				t.Fatal(err)
			}
			body = append(body, 0x18, 0x82, 0x00) // field 3 = 2, in two bytes
			rest, err := deterministic.Marshal(&pb.TxBody{Msg: anchorBody(alphaID, 2, hashesB).Msg})
			if err != nil {
				t.Fatal(err)
			}
			body = append(body, rest...)
			return envelope(t, body, pubOf(alpha1), ed25519.Sign(alpha1, SignBytes(body)))
		}, code: CodeMalformed},
		{name: "signer with upper case", bad: withBody(func(b *pb.TxBody) { b.Signer = "Alpha" }), code: CodeMalformed},
		{name: "signer with a slash", bad: withBody(func(b *pb.TxBody) { b.Signer = "alpha/1" }), code: CodeMalformed},
		{name: "signer with a space", bad: withBody(func(b *pb.TxBody) { b.Signer = "alpha " }), code: CodeMalformed},
		{name: "signer with non-ASCII", bad: withBody(func(b *pb.TxBody) { b.Signer = "alphä" }), code: CodeMalformed},
		{name: "signer empty", bad: withBody(func(b *pb.TxBody) { b.Signer = "" }), code: CodeMalformed},
		{name: "signer 65 characters", bad: withBody(func(b *pb.TxBody) { b.Signer = strings.Repeat("a", 65) }), code: CodeMalformed},
	}
}

// TestSequenceStep: a sequence may move by exactly MaxSequenceStep, so the
// rule refuses only what would run the account towards the end of the
// sequence space.
func TestSequenceStep(t *testing.T) {
	n := start(t)
	n.blockOK(alphaTx(1, hashesA)(t))
	n.blockOK(alphaTx(1+MaxSequenceStep, hashesB)(t))
	if r := n.checkTx(alphaTx(1+2*MaxSequenceStep+1, hashesN("c", 2))(t)); r.Code != CodeSequenceJump {
		t.Fatalf("a step of MaxSequenceStep+1 after the last: code %d (%s), want %d", r.Code, r.Log, CodeSequenceJump)
	}
	if r := n.checkTx(alphaTx(1+2*MaxSequenceStep, hashesN("c", 2))(t)); r.Code != CodeOK {
		t.Fatalf("a step of MaxSequenceStep after the last: code %d (%s)", r.Code, r.Log)
	}
}

// TestRules checks each rule in CheckTx, PrepareProposal, ProcessProposal and
// FinalizeBlock, and that a rejected transaction leaves the state as the
// same block without it.
func TestRules(t *testing.T) {
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.at == 0 {
				tc.at = 1
			}
			if tc.good == nil {
				tc.good = alphaTx(1, hashesA)
			}
			good, bad := tc.good(t), tc.bad(t)

			setup := func() *chain {
				n := start(t)
				if tc.prior != nil {
					n.blockOK(tc.prior(t)...)
				}
				n.advanceTo(tc.at - 1)
				return n
			}
			n, ref := setup(), setup()

			t.Run("CheckTx", func(t *testing.T) {
				if r := n.checkTx(good); r.Code != CodeOK {
					t.Fatalf("good tx: code %d (%s)", r.Code, r.Log)
				}
				r := n.checkTx(bad)
				if r.Code != tc.code {
					t.Fatalf("code %d (%s), want %d", r.Code, r.Log, tc.code)
				}
				if r.Log == "" || r.Codespace == "" {
					t.Errorf("rejection without log or codespace: %+v", r)
				}
				if tc.relative {
					return
				}
				// Rejected alone, without the good one pending, too.
				alone := setup()
				if r := alone.checkTx(bad); r.Code != tc.code {
					t.Errorf("alone: code %d (%s), want %d", r.Code, r.Log, tc.code)
				}
			})
			t.Run("PrepareProposal", func(t *testing.T) {
				if got := n.prepare(good, bad); !sameTxs(got, [][]byte{good}) {
					t.Errorf("proposal keeps %d txs, want only the good one", len(got))
				}
				if !tc.relative {
					if got := n.prepare(bad, good, bad); !sameTxs(got, [][]byte{good}) {
						t.Errorf("proposal [bad good bad] keeps %d txs, want only the good one", len(got))
					}
				}
			})
			t.Run("ProcessProposal", func(t *testing.T) {
				if s := n.process(good); s != abci.ResponseProcessProposal_ACCEPT {
					t.Fatalf("proposal [good]: %v, want ACCEPT", s)
				}
				if s := n.process(good, bad); s != abci.ResponseProcessProposal_REJECT {
					t.Errorf("proposal [good bad]: %v, want REJECT", s)
				}
				if s := n.process(bad); s != abci.ResponseProcessProposal_REJECT && !tc.relative {
					t.Errorf("proposal [bad]: %v, want REJECT", s)
				}
			})
			t.Run("FinalizeBlock", func(t *testing.T) {
				res := n.finalize(good, bad)
				want := ref.finalize(good)
				if res.TxResults[0].Code != CodeOK {
					t.Fatalf("good tx: code %d (%s)", res.TxResults[0].Code, res.TxResults[0].Log)
				}
				r := res.TxResults[1]
				if r.Code != tc.code {
					t.Errorf("code %d (%s), want %d", r.Code, r.Log, tc.code)
				}
				if r.Log == "" {
					t.Error("rejected tx has an empty log")
				}
				if len(r.Events) != 0 {
					t.Errorf("rejected tx has events: %v", r.Events)
				}
				if !bytes.Equal(res.AppHash, want.AppHash) {
					t.Errorf("app hash %x, want %x (the same block without the bad tx)", res.AppHash, want.AppHash)
				}
				n.commit()
				ref.commit()
				if a, b := n.info().LastBlockAppHash, ref.info().LastBlockAppHash; !bytes.Equal(a, b) {
					t.Errorf("committed app hash %x, want %x", a, b)
				}
				if got := len(n.hooked); got == 0 || len(n.hooked[got-1].batches) != 1 {
					t.Errorf("commit hook: %+v, want the good batch only", n.hooked)
				}
			})
		})
	}
}

// TestCodesAreDistinct guards the result code table: each sentinel maps to
// its own non-zero code, and wrapping keeps the code.
func TestCodesAreDistinct(t *testing.T) {
	errs := []error{ErrMalformed, ErrWrongChain, ErrBadSignature, ErrBadRoot, ErrUnknown, ErrUnauthorized, ErrReplay, ErrTooLarge}
	seen := map[uint32]error{}
	for _, e := range errs {
		c := codeOf(e)
		if c == CodeOK || c == CodeInternal {
			t.Errorf("%v: code %d", e, c)
		}
		if prev, ok := seen[c]; ok {
			t.Errorf("%v and %v share code %d", e, prev, c)
		}
		seen[c] = e
		if w := codeOf(wrapf(e)); w != c {
			t.Errorf("wrapped %v: code %d, want %d", e, w, c)
		}
	}
	if codeOf(nil) != CodeOK {
		t.Error("nil error is not CodeOK")
	}
}

func wrapf(e error) error { return &wrapped{e} }

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "context: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

// TestValidID pins the id alphabet (ids are state key components).
func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"uni-1.registrar_x", true},
		{strings.Repeat("z", 64), true},
		{"", false},
		{strings.Repeat("z", 65), false},
		{"A", false},
		{"a/b", false},
		{"a b", false},
		{"a\x00", false},
		{"é", false},
	} {
		t.Run(tc.id, func(t *testing.T) {
			if err := ValidID(tc.id); (err == nil) != tc.ok {
				t.Errorf("ValidID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
			}
		})
	}
}

// TestNewAnchorBatchRoundTrip decodes what NewAnchorBatch builds.
func TestNewAnchorBatchRoundTrip(t *testing.T) {
	for _, n := range []int{1, 2, 3, 16} {
		hs := hashesN("rt", n)
		raw := anchor(t, testChainID, alphaID, 7, hs, alpha1)
		tx, err := decodeTx(raw, testChainID, testMaxHashes)
		if err != nil {
			t.Fatalf("%d hashes: decodeTx: %v", n, err)
		}
		m := tx.body.GetAnchorBatch()
		root, _ := proof.Root(hs)
		if tx.body.Signer != alphaID || tx.body.Sequence != 7 || !bytes.Equal(m.Hashes, hs) || !bytes.Equal(m.Root, root[:]) || !bytes.Equal(tx.pubKey, pubOf(alpha1)) {
			t.Errorf("%d hashes: decoded %+v", n, tx.body)
		}
	}
	if _, _, err := NewAnchorBatch(testChainID, alphaID, 1, nil, alpha1); err == nil {
		t.Error("NewAnchorBatch accepted no hashes")
	}
	if _, _, err := NewAnchorBatch(testChainID, alphaID, 1, make([]byte, 33), alpha1); err == nil {
		t.Error("NewAnchorBatch accepted 33 bytes of hashes")
	}
}

// TestEveryMessageKindHasAHome: every message a TxBody can carry has its
// rules and effect (messageOf), so a kind added to the wire format without
// them fails here rather than as "no message" on the chain.
func TestEveryMessageKindHasAHome(t *testing.T) {
	oneof := (&pb.TxBody{}).ProtoReflect().Descriptor().Oneofs().ByName("msg")
	fields := oneof.Fields()
	if fields.Len() == 0 {
		t.Fatal("TxBody has no msg oneof")
	}
	seen := map[string]bool{}
	for i := range fields.Len() {
		fd := fields.Get(i)
		body := &pb.TxBody{}
		m := body.ProtoReflect()
		m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message()))
		msg := messageOf(body)
		if msg == nil {
			t.Errorf("TxBody.%s has no message kind", fd.Name())
			continue
		}
		kind := fmt.Sprintf("%T", msg)
		if seen[kind] {
			t.Errorf("TxBody.%s shares message kind %s with another field", fd.Name(), kind)
		}
		seen[kind] = true
	}
	if messageOf(&pb.TxBody{}) != nil {
		t.Error("a body without a message has a message kind")
	}
}
