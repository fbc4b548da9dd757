package app

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"hash/maphash"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/oasisprotocol/curve25519-voi/curve"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// signDomain separates Credence transaction signatures from every other use
// of an ed25519 key; the body it prefixes carries the chain id.
const signDomain = "credence/tx/v1\x00"

// MaxTxBytes bounds one transaction: a full batch of DefaultMaxBatchHashes
// hashes plus the envelope. The mempool's max_tx_bytes is set from it.
const MaxTxBytes = 4 << 20

// Result codes of CheckTx and FinalizeBlock. Zero is success.
const (
	CodeOK uint32 = iota
	CodeMalformed
	CodeWrongChain
	CodeBadSignature
	CodeBadRoot
	CodeUnknownSigner
	CodeUnauthorized
	CodeReplay
	CodeTooLarge
	CodeInternal
	CodeRejected
	CodeSequenceJump
)

// MaxSequenceStep bounds how far one transaction may move its signer's
// sequence. Sequences only grow, so without a bound one transaction signed
// at 2^64-1 (a leaked key is enough) would leave the account no sequence to
// use, ever; with it, exhausting the space takes 2^44 transactions. It is
// far above what a node's batcher needs for the batches it has in flight.
const MaxSequenceStep = 1 << 20

// Sentinel errors of transaction validation; each maps to one result code.
var (
	ErrMalformed    = errors.New("malformed transaction")
	ErrWrongChain   = errors.New("transaction for another chain")
	ErrBadSignature = errors.New("bad signature")
	ErrBadRoot      = errors.New("batch root does not match its hashes")
	ErrUnknown      = errors.New("unknown signer")
	ErrUnauthorized = errors.New("signer not authorised")
	ErrReplay       = errors.New("sequence not above the signer's last")
	ErrSequenceJump = errors.New("sequence too far above the signer's last")
	ErrTooLarge     = errors.New("transaction too large")
	ErrRejected     = errors.New("not allowed in the current state")
)

func codeOf(err error) uint32 {
	switch {
	case err == nil:
		return CodeOK
	case errors.Is(err, ErrMalformed):
		return CodeMalformed
	case errors.Is(err, ErrWrongChain):
		return CodeWrongChain
	case errors.Is(err, ErrBadSignature):
		return CodeBadSignature
	case errors.Is(err, ErrBadRoot):
		return CodeBadRoot
	case errors.Is(err, ErrUnknown):
		return CodeUnknownSigner
	case errors.Is(err, ErrUnauthorized):
		return CodeUnauthorized
	case errors.Is(err, ErrReplay):
		return CodeReplay
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrRejected):
		return CodeRejected
	case errors.Is(err, ErrSequenceJump):
		return CodeSequenceJump
	default:
		return CodeInternal
	}
}

// SignBytes is what a transaction's key signs.
func SignBytes(body []byte) []byte {
	b := make([]byte, 0, len(signDomain)+len(body))
	return append(append(b, signDomain...), body...)
}

// SignTx encodes a transaction body and signs it with key, in the one
// encoding the chain accepts.
func SignTx(body *pb.TxBody, key ed25519.PrivateKey) ([]byte, error) {
	b, err := deterministic.Marshal(body)
	if err != nil {
		return nil, err
	}
	return deterministic.Marshal(&pb.Tx{
		Body:      b,
		PublicKey: key.Public().(ed25519.PublicKey),
		Signature: ed25519.Sign(key, SignBytes(b)),
	})
}

// ParseTx decodes a transaction's envelope and body and checks neither:
// the one decoding of the wire format, for readers of transactions that
// the chain has already accepted or will check itself.
func ParseTx(raw []byte) (*pb.Tx, *pb.TxBody, error) {
	var tx pb.Tx
	if err := proto.Unmarshal(raw, &tx); err != nil {
		return nil, nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	var body pb.TxBody
	if err := proto.Unmarshal(tx.Body, &body); err != nil {
		return &tx, nil, fmt.Errorf("%w: body: %v", ErrMalformed, err)
	}
	return &tx, &body, nil
}

// SequenceAccount names the account whose sequence body draws on: the
// signer as an issuer, or the signer as a member (governance, or a sponsor
// acting for its issuer). Each kind has its own sequences.
func SequenceAccount(body *pb.TxBody) (pb.AccountKind, error) {
	msg := messageOf(body)
	if msg == nil {
		return pb.AccountKind_ACCOUNT_KIND_UNSPECIFIED, fmt.Errorf("%w: no message", ErrMalformed)
	}
	if bytes.Equal(msg.sequenceKey(body), proof.MemberSequenceKey(body.Signer)) {
		return pb.AccountKind_ACCOUNT_KIND_MEMBER, nil
	}
	return pb.AccountKind_ACCOUNT_KIND_ISSUER, nil
}

// A message is one kind of transaction message with everything the chain
// does with it: the rules that need no state, the signer's sequence space,
// the rules against the state, and its effect. Each kind lives in the file
// of its subject: anchor.go, issuer.go, statuslist.go, gov.go.
type message interface {
	// validate applies the rules that need no state.
	validate(maxBatchHashes uint64) error
	// sequenceKey is the state key of the last sequence of the account
	// that signs body.
	sequenceKey(body *pb.TxBody) []byte
	// check applies the rules against c's state. It writes nothing.
	check(c *checker, tx *decodedTx) error
	// apply executes a checked transaction on the block's working state.
	apply(a *App, tx *decodedTx, b execBlock) ([]abci.Event, error)
}

// messageOf is the one dispatch over the message kinds; nil for a body
// without a message.
func messageOf(body *pb.TxBody) message {
	switch m := body.Msg.(type) {
	case *pb.TxBody_AnchorBatch:
		return anchorBatchMsg{m.AnchorBatch}
	case *pb.TxBody_Propose:
		return proposeMsg{m.Propose}
	case *pb.TxBody_Vote:
		return voteMsg{m.Vote}
	case *pb.TxBody_RegisterIssuer:
		return registerIssuerMsg{m.RegisterIssuer}
	case *pb.TxBody_RotateKey:
		return rotateKeyMsg{m.RotateKey}
	case *pb.TxBody_CompromiseKey:
		return compromiseKeyMsg{m.CompromiseKey}
	case *pb.TxBody_Revoke:
		return revokeMsg{m.Revoke}
	case *pb.TxBody_CreateRegistry:
		return createStatusListMsg{m.CreateRegistry}
	case *pb.TxBody_UpdateRegistry:
		return updateStatusListMsg{m.UpdateRegistry}
	}
	return nil
}

// execBlock is what a message's effect may depend on besides the state.
type execBlock struct {
	height       int64
	timeUnixNano int64
}

// decodedTx is a transaction whose envelope, signature and stateless rules
// have been checked.
type decodedTx struct {
	body   *pb.TxBody
	msg    message
	pubKey ed25519.PublicKey
	// raw and cacheKey place it in the App's decoded cache: a copy of the
	// bytes it was decoded from (the caller's may be reused) and their
	// hash.
	raw      []byte
	cacheKey uint64
}

// decodeTx checks everything that needs no state: encoding, chain id,
// signature, and the message's own rules.
func decodeTx(raw []byte, chainID string, maxBatchHashes uint64) (*decodedTx, error) {
	if len(raw) > MaxTxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), MaxTxBytes)
	}
	tx, body, err := ParseTx(raw)
	if err != nil {
		return nil, err
	}
	// One encoding per transaction, so that nobody can make a second copy
	// of a signed transaction with other bytes (the mempool dedups by bytes,
	// replay protection by sequence: a copy executed first would make the
	// signer's own transaction a replay). Unknown fields would survive
	// re-encoding, so they are refused outright, in the envelope and in the
	// signed body alike.
	if hasUnknownFields(tx.ProtoReflect()) || hasUnknownFields(body.ProtoReflect()) {
		return nil, fmt.Errorf("%w: fields this chain does not know", ErrMalformed)
	}
	if canon, err := deterministic.Marshal(tx); err != nil || !bytes.Equal(canon, raw) {
		return nil, fmt.Errorf("%w: envelope is not in canonical encoding", ErrMalformed)
	}
	if canon, err := deterministic.Marshal(body); err != nil || !bytes.Equal(canon, tx.Body) {
		return nil, fmt.Errorf("%w: body is not in canonical encoding", ErrMalformed)
	}
	if err := checkPublicKey(tx.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: public_key: %v", ErrMalformed, err)
	}
	if len(tx.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformed, len(tx.Signature), ed25519.SignatureSize)
	}
	if body.ChainId != chainID {
		return nil, fmt.Errorf("%w: chain_id %q, this chain is %q", ErrWrongChain, body.ChainId, chainID)
	}
	if err := ValidID(body.Signer); err != nil {
		return nil, fmt.Errorf("%w: signer: %v", ErrMalformed, err)
	}
	if body.Sequence == 0 {
		return nil, fmt.Errorf("%w: sequence must be positive", ErrMalformed)
	}
	if !ed25519.Verify(tx.PublicKey, SignBytes(tx.Body), tx.Signature) {
		return nil, ErrBadSignature
	}
	msg := messageOf(body)
	if msg == nil {
		return nil, fmt.Errorf("%w: no message", ErrMalformed)
	}
	if err := msg.validate(maxBatchHashes); err != nil {
		return nil, err
	}
	return &decodedTx{body: body, msg: msg, pubKey: tx.PublicKey}, nil
}

// decodedCache holds transactions that passed decodeTx: a batch is
// checked in CheckTx, PrepareProposal, ProcessProposal and FinalizeBlock,
// and decoding it again would compute its Merkle root again. An entry is
// found by a seeded hash of the transaction's bytes and taken only if its
// bytes are equal: a SHA-256 of them, the key before, three or four per
// batch, cost a validator 6 % of its CPU at 100,000 hashes/s; maphash and
// a comparison cost a fifth of that (BenchmarkDecodedCacheKey: 83 µs
// against 446 for 800 KB). decodeTx is a
// pure function of the bytes and the params, so the cache changes no
// result.
type decodedCache struct {
	seed  maphash.Seed
	txs   map[uint64]*decodedTx
	bytes int
	// max bounds the cache by the size of the transactions it holds
	// (WithTxCacheBytes).
	max int
}

// DefaultTxCacheBytes holds a few blocks of full batches.
const DefaultTxCacheBytes = 32 << 20

func newDecodedCache(max int) decodedCache {
	return decodedCache{seed: maphash.MakeSeed(), txs: make(map[uint64]*decodedTx), max: max}
}

// get is the decoded transaction of raw, if the cache holds it, and the
// key to add it under.
func (c *decodedCache) get(raw []byte) (*decodedTx, uint64) {
	key := maphash.Bytes(c.seed, raw)
	if tx := c.txs[key]; tx != nil && bytes.Equal(tx.raw, raw) {
		return tx, key
	}
	return nil, key
}

// add holds tx, decoded from raw, under key. Another transaction under
// the same key (other bytes with the same hash) is replaced.
func (c *decodedCache) add(key uint64, raw []byte, tx *decodedTx) {
	tx.raw, tx.cacheKey = bytes.Clone(raw), key
	if old := c.txs[key]; old != nil {
		c.bytes -= old.cost()
	}
	if c.bytes+tx.cost() > c.max {
		c.reset()
	}
	c.txs[key] = tx
	c.bytes += tx.cost()
}

// cost is what an entry counts against the cache's bound: its copy of
// the bytes and its decoded form, which holds every leaf again.
func (tx *decodedTx) cost() int { return 2 * len(tx.raw) }

// forget drops a transaction that will not be checked again: executed in a
// block, or refused by CheckTx (a later copy is decoded afresh).
func (c *decodedCache) forget(tx *decodedTx) {
	if c.txs[tx.cacheKey] == tx {
		delete(c.txs, tx.cacheKey)
		c.bytes -= tx.cost()
	}
}

// reset empties the cache: the params its transactions were decoded under
// may have changed.
func (c *decodedCache) reset() {
	clear(c.txs)
	c.bytes = 0
}

// hasUnknownFields reports whether m, or any message inside it, kept bytes
// its decoder did not recognise.
func hasUnknownFields(m protoreflect.Message) bool {
	if len(m.GetUnknown()) > 0 {
		return true
	}
	unknown := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil:
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && !unknown; i++ {
				unknown = hasUnknownFields(l.Get(i).Message())
			}
		case fd.IsMap():
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapValue().Message() != nil {
					unknown = hasUnknownFields(mv.Message())
				}
				return !unknown
			})
		default:
			unknown = hasUnknownFields(v.Message())
		}
		return !unknown
	})
	return unknown
}

// checkPublicKey refuses what is not a usable ed25519 key. A small-order
// point is refused: ed25519 verification accepts forged signatures for it
// (the identity key with R = identity and S = 0 verifies any message), so
// such a key would let anyone sign as its holder.
func checkPublicKey(b []byte) error {
	if len(b) != ed25519.PublicKeySize {
		return fmt.Errorf("ed25519 public key is %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	var c curve.CompressedEdwardsY
	if _, err := c.SetBytes(b); err != nil {
		return fmt.Errorf("ed25519 public key: %v", err)
	}
	var p curve.EdwardsPoint
	if _, err := p.SetCompressedY(&c); err != nil {
		return fmt.Errorf("ed25519 public key is not a curve point")
	}
	if p.IsSmallOrder() {
		return fmt.Errorf("ed25519 public key is a small-order point, which anyone can sign for")
	}
	return nil
}

// ValidID keeps ids printable and free of the state key separator.
func ValidID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("id %q must be 1 to 64 characters", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("id %q may hold only a-z, 0-9, '-', '.', '_'", id)
		}
	}
	return nil
}
