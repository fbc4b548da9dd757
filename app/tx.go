package app

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

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
)

// Sentinel errors of transaction validation; each maps to one result code.
var (
	ErrMalformed    = errors.New("malformed transaction")
	ErrWrongChain   = errors.New("transaction for another chain")
	ErrBadSignature = errors.New("bad signature")
	ErrBadRoot      = errors.New("batch root does not match its hashes")
	ErrUnknown      = errors.New("unknown signer")
	ErrUnauthorized = errors.New("signer not authorised")
	ErrReplay       = errors.New("sequence not above the signer's last")
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
	default:
		return CodeInternal
	}
}

// SignBytes is what a transaction's key signs.
func SignBytes(body []byte) []byte {
	b := make([]byte, 0, len(signDomain)+len(body))
	return append(append(b, signDomain...), body...)
}

// NewAnchorBatch builds and signs the AnchorBatch transaction of hashes
// (concatenated 32-byte credential hashes) for issuer's batch seq.
func NewAnchorBatch(chainID, issuer string, seq uint64, hashes []byte, key ed25519.PrivateKey) ([]byte, error) {
	root, err := proof.Root(hashes)
	if err != nil {
		return nil, err
	}
	return SignTx(&pb.TxBody{
		ChainId:  chainID,
		Signer:   issuer,
		Sequence: seq,
		Msg:      &pb.TxBody_AnchorBatch{AnchorBatch: &pb.AnchorBatch{Root: root[:], Hashes: hashes}},
	}, key)
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

// account is the sequence space the transaction's signer uses.
func (t *decodedTx) account() string {
	switch t.body.Msg.(type) {
	case *pb.TxBody_AnchorBatch, *pb.TxBody_CreateRegistry:
		return issuerAccount(t.body.Signer)
	case *pb.TxBody_RotateKey, *pb.TxBody_Revoke, *pb.TxBody_UpdateRegistry:
		if _, byIssuer := issuerOrSponsor(t.body); byIssuer {
			return issuerAccount(t.body.Signer)
		}
		return memberAccount(t.body.Signer)
	default:
		return memberAccount(t.body.Signer)
	}
}

// decodedTx is a transaction whose envelope, signature and stateless rules
// have been checked.
type decodedTx struct {
	body   *pb.TxBody
	pubKey ed25519.PublicKey
	// cacheKey and size place it in the App's decoded cache.
	cacheKey [32]byte
	size     int
}

// decodeTx checks everything that needs no state: encoding, chain id,
// signature, and for a batch that its root is the root of its hashes.
func decodeTx(raw []byte, chainID string, maxBatchHashes uint64) (*decodedTx, error) {
	if len(raw) > MaxTxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), MaxTxBytes)
	}
	var tx pb.Tx
	if err := proto.Unmarshal(raw, &tx); err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	// One encoding per transaction, so that nobody can make a second copy
	// of a signed transaction with other bytes (the mempool dedups by bytes).
	if canon, err := deterministic.Marshal(&tx); err != nil || !bytes.Equal(canon, raw) {
		return nil, fmt.Errorf("%w: envelope is not in canonical encoding", ErrMalformed)
	}
	if err := checkPublicKey(tx.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: public_key: %v", ErrMalformed, err)
	}
	if len(tx.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformed, len(tx.Signature), ed25519.SignatureSize)
	}
	var body pb.TxBody
	if err := proto.Unmarshal(tx.Body, &body); err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrMalformed, err)
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
	switch m := body.Msg.(type) {
	case *pb.TxBody_AnchorBatch:
		if err := checkAnchorBatch(m.AnchorBatch, maxBatchHashes); err != nil {
			return nil, err
		}
	case *pb.TxBody_Propose:
		if err := checkPropose(m.Propose); err != nil {
			return nil, err
		}
	case *pb.TxBody_Vote:
		if m.Vote.ProposalId == 0 {
			return nil, fmt.Errorf("%w: vote.proposal_id must be positive", ErrMalformed)
		}
	case *pb.TxBody_RegisterIssuer, *pb.TxBody_RotateKey, *pb.TxBody_CompromiseKey, *pb.TxBody_Revoke:
		if err := checkIssuerMsg(&body); err != nil {
			return nil, err
		}
	case *pb.TxBody_CreateRegistry, *pb.TxBody_UpdateRegistry:
		if err := checkRegistryMsg(&body); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: no message", ErrMalformed)
	}
	return &decodedTx{body: &body, pubKey: tx.PublicKey}, nil
}

func checkAnchorBatch(m *pb.AnchorBatch, maxHashes uint64) error {
	n := len(m.Hashes)
	if n == 0 || n%proof.HashSize != 0 {
		return fmt.Errorf("%w: hashes is %d bytes, want a positive multiple of %d", ErrMalformed, n, proof.HashSize)
	}
	if uint64(n/proof.HashSize) > maxHashes {
		return fmt.Errorf("%w: %d hashes, limit %d", ErrTooLarge, n/proof.HashSize, maxHashes)
	}
	if len(m.Root) != proof.HashSize {
		return fmt.Errorf("%w: root is %d bytes, want %d", ErrMalformed, len(m.Root), proof.HashSize)
	}
	root, err := proof.Root(m.Hashes)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if string(root[:]) != string(m.Root) {
		return ErrBadRoot
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
