package proof

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The state's proofs are ICS23 CommitmentProofs (cosmos/ics23 v0.11,
// proofs.proto) checked under the IAVL ProofSpec, implemented here from
// that specification so that the verifier carries neither the ics23
// module nor gogoproto; proof's tests check every answer against
// ics23.VerifyMembership and VerifyNonMembership.

// The IAVL ProofSpec's values (ics23.IavlSpec).
const (
	hashSHA256      = 1 // HashOp SHA256
	lengthVarProto  = 1 // LengthOp VAR_PROTO
	iavlChildSize   = 33
	iavlMinPrefix   = 4
	iavlMaxPrefix   = 12
	iavlMaxDepth    = 128 // the spec's MaxDepth is 0: ics23's default
	iavlInnerTail1  = 1   // bytes after an inner prefix's varints: a child's length
	iavlInnerTail34 = 34  // or a left child (length and hash) and the right's length
)

type leafOp struct {
	hash, prehashKey, prehashValue, length uint64
	prefix                                 []byte
}

type innerOp struct {
	hash           uint64
	prefix, suffix []byte
}

type existenceProof struct {
	key, value []byte
	leaf       *leafOp
	path       []*innerOp
}

type nonExistenceProof struct {
	key         []byte
	left, right *existenceProof
}

// commitmentProof holds the one form of CommitmentProof accepted: exist
// (field 1) or nonexist (field 2); batch and compressed forms can carry
// the same proof in other bytes and are refused.
type commitmentProof struct {
	exist    *existenceProof
	nonexist *nonExistenceProof
}

var errProofForm = errors.New("not a canonical ICS23 proof")

// decodeProof reads a CommitmentProof and requires its canonical encoding
// (docs/receipt.md): decoding then encoding gives back the same bytes.
func decodeProof(b []byte) (*commitmentProof, error) {
	if len(b) > maxProofBytes {
		return nil, fmt.Errorf("proof of %d bytes, at most %d", len(b), maxProofBytes)
	}
	cp := &commitmentProof{}
	err := readFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType || cp.exist != nil || cp.nonexist != nil {
			return errProofForm
		}
		var err error
		switch num {
		case 1:
			cp.exist, err = decodeExistence(v)
		case 2:
			cp.nonexist, err = decodeNonExistence(v)
		default:
			return errors.New("not an existence or non-existence proof")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(cp.encode(), b) {
		return nil, errors.New("proof is not in canonical encoding")
	}
	return cp, nil
}

// readFields calls f for each field of a message: v for LEN fields, n for
// VARINT ones; any other wire type is refused.
func readFields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return errProofForm
		}
		b = b[l:]
		var v []byte
		var n uint64
		switch typ {
		case protowire.BytesType:
			v, l = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			n, l = protowire.ConsumeVarint(b)
		default:
			return errProofForm
		}
		if l < 0 {
			return errProofForm
		}
		b = b[l:]
		if err := f(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}

// once refuses a second occurrence of a field that is not repeated: the
// canonical form has each at most once.
func once(seen *uint32, num protowire.Number) error {
	if num < 1 || num > 31 || *seen&(1<<num) != 0 {
		return errProofForm
	}
	*seen |= 1 << num
	return nil
}

func decodeExistence(b []byte) (*existenceProof, error) {
	p := &existenceProof{}
	var seen uint32
	err := readFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return errProofForm
		}
		if num != 4 {
			if err := once(&seen, num); err != nil {
				return err
			}
		}
		switch num {
		case 1:
			p.key = v
		case 2:
			p.value = v
		case 3:
			l, err := decodeLeaf(v)
			p.leaf = l
			return err
		case 4:
			op, err := decodeInner(v)
			p.path = append(p.path, op)
			return err
		default:
			return errProofForm
		}
		return nil
	})
	return p, err
}

func decodeNonExistence(b []byte) (*nonExistenceProof, error) {
	p := &nonExistenceProof{}
	var seen uint32
	err := readFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return errProofForm
		}
		if err := once(&seen, num); err != nil {
			return err
		}
		var err error
		switch num {
		case 1:
			p.key = v
		case 2:
			p.left, err = decodeExistence(v)
		case 3:
			p.right, err = decodeExistence(v)
		default:
			return errProofForm
		}
		return err
	})
	return p, err
}

func decodeLeaf(b []byte) (*leafOp, error) {
	l := &leafOp{}
	var seen uint32
	err := readFields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		if err := once(&seen, num); err != nil {
			return err
		}
		if (num == 5) != (typ == protowire.BytesType) {
			return errProofForm
		}
		switch num {
		case 1:
			l.hash = n
		case 2:
			l.prehashKey = n
		case 3:
			l.prehashValue = n
		case 4:
			l.length = n
		case 5:
			l.prefix = v
		default:
			return errProofForm
		}
		return nil
	})
	return l, err
}

func decodeInner(b []byte) (*innerOp, error) {
	op := &innerOp{}
	var seen uint32
	err := readFields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		if err := once(&seen, num); err != nil {
			return err
		}
		if (num == 1) != (typ == protowire.VarintType) {
			return errProofForm
		}
		switch num {
		case 1:
			op.hash = n
		case 2:
			op.prefix = v
		case 3:
			op.suffix = v
		default:
			return errProofForm
		}
		return nil
	})
	return op, err
}

// Canonical encoding (appendVarintField and its kin, cometbft_wire.go): fields
// in order, zero scalars and empty bytes left out, a present message
// written even when empty.

func (cp *commitmentProof) encode() []byte {
	switch {
	case cp.exist != nil:
		e := cp.exist.encode()
		return appendMessageField(make([]byte, 0, 1+binary.MaxVarintLen64+len(e)), 1, e)
	case cp.nonexist != nil:
		n := cp.nonexist.encode()
		return appendMessageField(make([]byte, 0, 1+binary.MaxVarintLen64+len(n)), 2, n)
	}
	return nil
}

func (p *existenceProof) encode() []byte {
	// About the encoded size: an IAVL inner op is under 80 bytes.
	b := appendBytesField(make([]byte, 0, 64+len(p.key)+len(p.value)+80*len(p.path)), 1, p.key)
	b = appendBytesField(b, 2, p.value)
	if p.leaf != nil {
		b = appendMessageField(b, 3, p.leaf.encode())
	}
	for _, op := range p.path {
		b = appendMessageField(b, 4, op.encode())
	}
	return b
}

func (p *nonExistenceProof) encode() []byte {
	b := appendBytesField(nil, 1, p.key)
	if p.left != nil {
		b = appendMessageField(b, 2, p.left.encode())
	}
	if p.right != nil {
		b = appendMessageField(b, 3, p.right.encode())
	}
	return b
}

func (l *leafOp) encode() []byte {
	b := appendVarintField(nil, 1, l.hash)
	b = appendVarintField(b, 2, l.prehashKey)
	b = appendVarintField(b, 3, l.prehashValue)
	b = appendVarintField(b, 4, l.length)
	return appendBytesField(b, 5, l.prefix)
}

func (op *innerOp) encode() []byte {
	b := appendVarintField(nil, 1, op.hash)
	b = appendBytesField(b, 2, op.prefix)
	return appendBytesField(b, 3, op.suffix)
}

func membership(root, proofBytes, key, value []byte) error {
	cp, err := decodeProof(proofBytes)
	if err != nil {
		return err
	}
	if cp.exist == nil {
		return errors.New("not an existence proof")
	}
	if err := cp.exist.verify(root, key, value); err != nil {
		return fmt.Errorf("membership proof does not verify against the app hash: %w", err)
	}
	return nil
}

func nonMembership(root, proofBytes, key []byte) error {
	cp, err := decodeProof(proofBytes)
	if err != nil {
		return err
	}
	np := cp.nonexist
	if np == nil {
		return errors.New("not a non-existence proof")
	}
	if err := np.verify(root, key); err != nil {
		return fmt.Errorf("non-membership proof does not verify against the app hash: %w", err)
	}
	return nil
}

// verify is ics23's ExistenceProof.Verify under the IAVL spec.
func (p *existenceProof) verify(root, key, value []byte) error {
	if err := p.checkSpec(); err != nil {
		return err
	}
	if !bytes.Equal(key, p.key) {
		return errors.New("the proof is for another key")
	}
	if !bytes.Equal(value, p.value) {
		return errors.New("the proof is for another value")
	}
	if len(p.key) == 0 || len(p.value) == 0 {
		return errors.New("leaf needs a key and a value")
	}
	valueHash := sha256.Sum256(p.value)
	data := append([]byte(nil), p.leaf.prefix...)
	data = protowire.AppendVarint(data, uint64(len(p.key)))
	data = append(data, p.key...)
	data = protowire.AppendVarint(data, sha256.Size)
	data = append(data, valueHash[:]...)
	h := sha256.Sum256(data)
	for _, op := range p.path {
		pre := make([]byte, 0, len(op.prefix)+sha256.Size+len(op.suffix))
		pre = append(append(append(pre, op.prefix...), h[:]...), op.suffix...)
		h = sha256.Sum256(pre)
	}
	if !bytes.Equal(root, h[:]) {
		return errors.New("the proof leads to another root")
	}
	return nil
}

// checkSpec is ics23's CheckAgainstSpec for IavlSpec: the leaf and each
// inner step have the IAVL form, including the node fields (height, size,
// version) IAVL writes in each prefix.
func (p *existenceProof) checkSpec() error {
	l := p.leaf
	if l == nil {
		return errors.New("no leaf operation")
	}
	if err := iavlPrefix(l.prefix, 0); err != nil {
		return fmt.Errorf("leaf: %w", err)
	}
	if l.hash != hashSHA256 || l.prehashKey != 0 || l.prehashValue != hashSHA256 || l.length != lengthVarProto {
		return errors.New("leaf operation is not IAVL's")
	}
	if len(l.prefix) == 0 || l.prefix[0] != 0 {
		return errors.New("leaf prefix does not start with 00")
	}
	if len(p.path) > iavlMaxDepth {
		return fmt.Errorf("path of %d steps, at most %d", len(p.path), iavlMaxDepth)
	}
	for i, op := range p.path {
		if op.hash != hashSHA256 {
			return fmt.Errorf("step %d: hash is not SHA-256", i)
		}
		if err := iavlPrefix(op.prefix, i+1); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
		if len(op.prefix) > 0 && op.prefix[0] == 0 {
			return fmt.Errorf("step %d: inner prefix starts like a leaf's", i)
		}
		if len(op.prefix) < iavlMinPrefix || len(op.prefix) > iavlMaxPrefix+iavlChildSize {
			return fmt.Errorf("step %d: prefix of %d bytes", i, len(op.prefix))
		}
		if len(op.suffix)%iavlChildSize != 0 {
			return fmt.Errorf("step %d: suffix of %d bytes", i, len(op.suffix))
		}
	}
	return nil
}

// iavlPrefix checks an IAVL node prefix: height, size and version as
// non-negative zigzag varints, the height at least the node's depth from
// the leaf; a leaf has nothing after them, an inner node a child's length
// (1 byte) or a left child with its length and the right's length (34).
func iavlPrefix(prefix []byte, depth int) error {
	r := bytes.NewReader(prefix)
	for i := 0; i < 3; i++ {
		v, err := binary.ReadVarint(r)
		if err != nil {
			return fmt.Errorf("node fields: %v", err)
		}
		if v < 0 || i == 0 && v < int64(depth) {
			return errors.New("node fields out of range")
		}
	}
	rest := r.Len()
	if depth == 0 && rest != 0 || depth > 0 && rest != iavlInnerTail1 && rest != iavlInnerTail34 {
		return errors.New("node prefix of the wrong length")
	}
	return nil
}

// verify is ics23's NonExistenceProof.Verify under the IAVL spec: the
// neighbours are in the tree, on either side of key, and adjacent.
func (p *nonExistenceProof) verify(root, key []byte) error {
	// ics23 ignores this field; it is bound here so that no byte of the
	// proof goes unchecked.
	if !bytes.Equal(p.key, key) {
		return errors.New("the proof is for another key")
	}
	if p.left == nil && p.right == nil {
		return errors.New("no neighbour")
	}
	if p.left != nil {
		if err := p.left.verify(root, p.left.key, p.left.value); err != nil {
			return fmt.Errorf("left neighbour: %w", err)
		}
		if bytes.Compare(p.left.key, key) >= 0 {
			return errors.New("left neighbour is not left of the key")
		}
	}
	if p.right != nil {
		if err := p.right.verify(root, p.right.key, p.right.value); err != nil {
			return fmt.Errorf("right neighbour: %w", err)
		}
		if bytes.Compare(p.right.key, key) <= 0 {
			return errors.New("right neighbour is not right of the key")
		}
	}
	switch {
	case p.left == nil:
		if !leftMost(p.right.path) {
			return errors.New("no left neighbour, and the right one is not the leftmost leaf")
		}
	case p.right == nil:
		if !rightMost(p.left.path) {
			return errors.New("no right neighbour, and the left one is not the rightmost leaf")
		}
	default:
		if !neighbours(p.left.path, p.right.path) {
			return errors.New("the neighbours are not adjacent leaves")
		}
	}
	return nil
}

// branch is the side an inner step's child is on, from its padding: 0
// (left: the right sibling in the suffix), 1 (right: the left sibling in
// the prefix), -1 neither.
func branch(op *innerOp) int {
	switch {
	case len(op.prefix) >= iavlMinPrefix && len(op.prefix) <= iavlMaxPrefix && len(op.suffix) == iavlChildSize:
		return 0
	case len(op.prefix) >= iavlChildSize+iavlMinPrefix && len(op.prefix) <= iavlChildSize+iavlMaxPrefix && len(op.suffix) == 0:
		return 1
	}
	return -1
}

// IAVL has no empty children, so the leftmost leaf is the left child at
// every step and the rightmost the right child.
func leftMost(path []*innerOp) bool {
	for _, op := range path {
		if branch(op) != 0 {
			return false
		}
	}
	return true
}

func rightMost(path []*innerOp) bool {
	for _, op := range path {
		if branch(op) != 1 {
			return false
		}
	}
	return true
}

// neighbours: below the steps the two paths share from the root, left
// goes left and right goes right, and from there left is the rightmost
// leaf and right the leftmost.
func neighbours(left, right []*innerOp) bool {
	for len(left) > 0 && len(right) > 0 {
		tl, tr := left[len(left)-1], right[len(right)-1]
		if !bytes.Equal(tl.prefix, tr.prefix) || !bytes.Equal(tl.suffix, tr.suffix) {
			return branch(tl) == 0 && branch(tr) == 1 &&
				rightMost(left[:len(left)-1]) && leftMost(right[:len(right)-1])
		}
		left, right = left[:len(left)-1], right[:len(right)-1]
	}
	return false
}
