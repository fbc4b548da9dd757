package app

// The harness for issuers: issuer transactions, batches, key windows,
// revocations and status lists, and the reads and proofs that check them.
//
// Issuer tests run on the governance chains (startGov), mostly with two
// members: "uni" (power 10, sponsor of alpha and beta) and "member-b" (power
// 1, sponsor of gamma). uni holds more than 2/3 of the power, so its
// proposals (an issuer's suspension) pass in the block that carries them.

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"

	ics23 "github.com/cosmos/ics23/go"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

const (
	statusActive    = pb.IssuerStatus_ISSUER_STATUS_ACTIVE
	statusSuspended = pb.IssuerStatus_ISSUER_STATUS_SUSPENDED
)

func issuerTestKey(name string) ed25519.PrivateKey { return testKey("reg-" + name) }

// bodyFn builds the body of a transaction for a signer and sequence.
type bodyFn func(signer string, seq uint64) *pb.TxBody

func registerIssuer(id, name string, keys ...[]byte) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_RegisterIssuer{RegisterIssuer: &pb.RegisterIssuer{Id: id, Name: name, Keys: keys}}}
	}
}

func rotateKey(issuer string, newKey []byte) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_RotateKey{RotateKey: &pb.RotateKey{Issuer: issuer, NewKey: newKey}}}
	}
}

func compromiseKey(issuer string, key []byte, from int64) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_CompromiseKey{CompromiseKey: &pb.CompromiseKey{Issuer: issuer, Key: key, FromHeight: from}}}
	}
}

func revoke(issuer string, reason uint32, hs ...*pb.RevokedHash) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_Revoke{Revoke: &pb.Revoke{Issuer: issuer, Reason: reason, Hashes: hs}}}
	}
}

// asMember is msg signed by member m with its admin key, at m's next
// (member account) sequence.
func (c *chain) asMember(m member, msg bodyFn) []byte {
	return sign(c.t, msg(m.id, c.next(memberAccount(m.id))), m.admin)
}

// asIssuer is msg signed by issuer with key, at its next (issuer
// account) sequence: the one its batches use.
func (c *chain) asIssuer(issuer string, key ed25519.PrivateKey, msg bodyFn) []byte {
	return sign(c.t, msg(issuer, c.next(issuerAccount(issuer))), key)
}

// as is msg signed as signer (sequence from account) with any key.
func (c *chain) as(signer, account string, key ed25519.PrivateKey, msg bodyFn) []byte {
	return sign(c.t, msg(signer, c.next(account)), key)
}

// batch is a batch of an issuer with its tree, to revoke its hashes.
type batch struct {
	issuer string
	seq    uint64
	hashes []byte
	tree   *proof.Tree
}

func newBatch(t testing.TB, issuer string, seq uint64, n int) *batch {
	t.Helper()
	hs := hashesN(fmt.Sprintf("reg/%s/%d", issuer, seq), n)
	tree, err := proof.NewTree(hs)
	if err != nil {
		t.Fatal(err)
	}
	return &batch{issuer: issuer, seq: seq, hashes: hs, tree: tree}
}

func (b *batch) hash(i int) []byte { return b.hashes[i*proof.HashSize : (i+1)*proof.HashSize] }

// revoked is the RevokedHash of leaf i: hash, batch_seq, leaf_index and
// the audit path from proof.Tree.
func (b *batch) revoked(i int) *pb.RevokedHash {
	path, err := b.tree.AuditPath(uint64(i))
	if err != nil {
		panic(err)
	}
	return &pb.RevokedHash{Hash: b.hash(i), BatchSeq: b.seq, LeafIndex: uint64(i), AuditPath: path}
}

// anchorBatch is issuer's next batch of n hashes, signed with key.
func (c *chain) anchorBatch(issuer string, key ed25519.PrivateKey, n int) (*batch, []byte) {
	c.t.Helper()
	b := newBatch(c.t, issuer, c.next(issuerAccount(issuer)), n)
	return b, anchor(c.t, testChainID, issuer, b.seq, b.hashes, key)
}

func (c *chain) anchorTx(issuer string, key ed25519.PrivateKey, n int) []byte {
	_, tx := c.anchorBatch(issuer, key, n)
	return tx
}

// issuer reads an issuer's record from the last committed state.
func (c *chain) issuer(id string) *pb.Issuer {
	c.t.Helper()
	var is pb.Issuer
	if !c.value(proof.IssuerKey(id), 0, &is) {
		c.t.Fatalf("issuer %q not registered", id)
	}
	return &is
}

// windows prints an issuer's key windows, keys by their first bytes.
func windows(is *pb.Issuer) string {
	var b strings.Builder
	for _, k := range is.Keys {
		fmt.Fprintf(&b, "[%x: from %d to %d compromised %d]", k.PublicKey[:4], k.FromHeight, k.ToHeight, k.CompromisedFrom)
	}
	return b.String()
}

func keyRec(k ed25519.PrivateKey, from, to, compromised int64) *pb.IssuerKey {
	return &pb.IssuerKey{PublicKey: pubOf(k), FromHeight: from, ToHeight: to, CompromisedFrom: compromised}
}

func (c *chain) wantKeys(id string, want ...*pb.IssuerKey) {
	c.t.Helper()
	got := c.issuer(id).Keys
	if len(got) != len(want) {
		c.t.Fatalf("issuer %q has %d keys %v, want %v", id, len(got), got, want)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			c.t.Fatalf("issuer %q key %d: {from %d to %d compromised %d}, want {from %d to %d compromised %d} (same key: %v)", id, i,
				got[i].FromHeight, got[i].ToHeight, got[i].CompromisedFrom, want[i].FromHeight, want[i].ToHeight, want[i].CompromisedFrom,
				bytes.Equal(got[i].PublicKey, want[i].PublicKey))
		}
	}
}

// wantCheck requires CheckTx to answer code (with a log when refused).
func wantCheck(t testing.TB, n *chain, tx []byte, code uint32) {
	t.Helper()
	r := n.checkTx(tx)
	if r.Code != code {
		t.Fatalf("CheckTx: code %d (%s), want %d", r.Code, r.Log, code)
	}
	if code != CodeOK && r.Log == "" {
		t.Fatal("CheckTx refuses without a log")
	}
}

// proved queries key at height (0: latest) with a proof and verifies it
// against that height's app hash: membership when the key is present,
// non-membership otherwise. It returns the value.
func proved(t testing.TB, n *chain, key []byte, height int64) []byte {
	t.Helper()
	res := n.query("/key", key, height, true)
	if res.Code != CodeOK || res.ProofOps == nil || len(res.ProofOps.Ops) != 1 || res.ProofOps.Ops[0].Type != "ics23:iavl" {
		t.Fatalf("query %q at %d: code %d (%s) proof %v", key, height, res.Code, res.Log, res.ProofOps)
	}
	root := n.appHash[res.Height]
	if root == nil {
		t.Fatalf("no app hash recorded for height %d", res.Height)
	}
	p := unmarshalProof(t, res.ProofOps.Ops[0].Data)
	if res.Value != nil {
		verifyMembership(t, root, res.ProofOps.Ops[0].Data, key, res.Value)
		if ics23.VerifyNonMembership(ics23.IavlSpec, root, p, key) {
			t.Fatalf("membership proof of %q also proves its absence", key)
		}
		return res.Value
	}
	if !ics23.VerifyNonMembership(ics23.IavlSpec, root, p, key) {
		t.Fatalf("non-membership proof of %q does not verify against app hash %x", key, root)
	}
	return nil
}

func revocation(t testing.TB, n *chain, issuer string, hash []byte, height int64) *pb.Revocation {
	t.Helper()
	v := proved(t, n, proof.RevocationKey(issuer, hash), height)
	if v == nil {
		return nil
	}
	var r pb.Revocation
	if err := proto.Unmarshal(v, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// Status lists

func createStatusList(id string, p pb.RegistryPurpose, size uint64) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_CreateRegistry{CreateRegistry: &pb.CreateRegistry{Id: id, Purpose: p, Size: size}}}
	}
}

func updateStatusList(issuer, id string, set, clear []uint64) bodyFn {
	return func(s string, q uint64) *pb.TxBody {
		return &pb.TxBody{ChainId: testChainID, Signer: s, Sequence: q,
			Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: &pb.UpdateRegistry{Issuer: issuer, Id: id, Set: set, Clear: clear}}}
	}
}
