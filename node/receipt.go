package node

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	rpcclient "github.com/cometbft/cometbft/rpc/client"
	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// errNotFinal: the hash is anchored but the header proving it is not
// signed in a committed block yet. A receipt for a batch of block H needs
// header H+1 with the canonical commit block H+2 carries.
var errNotFinal = errors.New("anchored, but the block that signs its header is not committed yet")

// notFinalUntil is errNotFinal for a batch whose receipt cannot be built
// before block indexed is indexed: a call waiting for it asks again only
// then.
type notFinalUntil struct {
	err     error
	indexed int64
}

func (e notFinalUntil) Error() string { return e.err.Error() }
func (e notFinalUntil) Unwrap() error { return e.err }

// receipts builds receipts from the index and the block store. A batch's
// tree and a height's signed header are shared by every leaf, so both are
// cached: after the first leaf of a batch, a receipt costs O(log n).
type receipts struct {
	db    *badger.DB
	index *index
	// consensus serves the headers the index does not hold.
	consensus headerReader
	chainID   string

	mu sync.Mutex
	// trees holds whole batch trees, the newest batches' (every client
	// polling for a batch just final asks at once); one evicted from it
	// moves to trimmed, as its tree without the bottom levels
	// (receiptTreeBottom), so an older batch costs a read of its leaf's
	// group rather than a whole tree build. Each takes half the budget.
	trees   *lru
	trimmed *lru
	headers *lru
	// building holds the batches whose tree one caller is building: when a
	// batch becomes final, every client polling for one of its receipts
	// asks at once, and each building its own tree of up to 65,536 leaves
	// took a fifth of a loaded node's CPU.
	building map[string]*treeBuild
	// linkHeights are the heights after which the validator set changed,
	// in order (the keys of xv/).
	linkHeights []int64
}

type headerEntry struct {
	signedHeader []byte
	validators   []*proof.Validator
}

// headerReader reads, from consensus, a signed header the index does not
// hold (consensusChain). Receipts take it rather than CometBFT's RPC, so
// that they, and the snapshots that need them, are made before CometBFT,
// which takes the snapshots.
type headerReader interface {
	ReadSignedHeader(ctx context.Context, height int64) (*headerEntry, error)
}

// newReceipts builds receipts from db and its index, reading the headers
// the index does not hold from headers, caching up to treeCacheBytes of
// batch trees and headerCacheBytes of headers and links.
func newReceipts(db *badger.DB, idx *index, headers headerReader, chainID string, treeCacheBytes, headerCacheBytes int) (*receipts, error) {
	r := &receipts{db: db, index: idx, consensus: headers, chainID: chainID, headers: newLRU(headerCacheBytes),
		building: make(map[string]*treeBuild)}
	r.newTreeCaches(treeCacheBytes)
	if err := r.loadLinks(); err != nil {
		return nil, err
	}
	return r, nil
}

type treeBuild struct {
	done chan struct{}
	b    *batchData
	err  error
}

// newTreeCaches makes the tree caches, of bytes together.
func (r *receipts) newTreeCaches(bytes int) {
	r.trimmed = newLRU(bytes - bytes/2)
	r.trees = newLRU(bytes / 2)
	r.trees.evicted = func(key string, v any) {
		b := *v.(*batchData)
		b.tree = b.tree.Trim(receiptTreeBottom)
		r.trimmed.put(key, &b, b.size())
	}
}

type batchData struct {
	tree       *proof.Tree
	record     *proof.BatchRecord
	proof      []byte
	recordSize int // the record's encoded size, for the cache's bound
}

// size is what b holds in memory, for the caches' bound.
func (b *batchData) size() int { return b.tree.MemoryBytes() + len(b.proof) + b.recordSize }

func (r *receipts) build(ctx context.Context, hash []byte, issuer string) (*proof.Receipt, error) {
	// held is every candidate confirmed, with the batch and audit path it
	// was confirmed with; find picks one of them (a hash is seldom in more
	// than one batch).
	type confirmed struct {
		at   position
		b    *batchData
		path [][]byte
	}
	var held []confirmed
	var pos position
	if err := r.db.View(func(txn *badger.Txn) error {
		var err error
		// A candidate is confirmed with the leaves its audit path is built
		// from: the leaf's group, read from the leaf store and checked
		// against the batch's trimmed tree.
		pos, err = anchoredAtCheck(txn, r.index, hash, issuer, func(ref batchRef, index uint64, hash []byte) (bool, error) {
			b, err := r.batch(ref.issuer, ref.seq)
			if errors.Is(err, errNotFound) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			path, ok, err := r.pathOf(txn, ref, b, index, hash)
			if ok {
				held = append(held, confirmed{at: position{issuer: ref.issuer, seq: ref.seq, index: index}, b: b, path: path})
			}
			return ok, err
		})
		return err
	}); err != nil {
		return nil, err
	}
	i := slices.IndexFunc(held, func(c confirmed) bool {
		return c.at.issuer == pos.issuer && c.at.seq == pos.seq && c.at.index == pos.index
	})
	if i < 0 {
		return nil, fmt.Errorf("receipts: position %s/%d/%d found but not among those confirmed", pos.issuer, pos.seq, pos.index)
	}
	b, path := held[i].b, held[i].path
	h, err := r.header(ctx, b.record.Height+1)
	if errors.Is(err, errNotFinal) {
		return nil, notFinalUntil{err: err, indexed: b.record.Height + 2}
	}
	if err != nil {
		return nil, err
	}
	_, links, err := r.links(ctx, b.record.Height+1)
	if err != nil {
		return nil, err
	}
	return &proof.Receipt{
		Version:        proof.ReceiptVersion,
		ChainId:        r.chainID,
		CredentialHash: append([]byte(nil), hash...),
		LeafIndex:      pos.index,
		AuditPath:      path,
		Batch:          b.record,
		BatchProof:     b.proof,
		SignedHeader:   h.signedHeader,
		Validators:     h.validators,
		ValidatorLinks: links,
	}, nil
}

// loadLinks reads the heights after which the validator set changed.
func (r *receipts) loadLinks() error {
	var hs []int64
	if err := r.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixValidatorSet)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			hs = append(hs, xvHeight(it.Item().Key()))
		}
		return nil
	}); err != nil {
		return err
	}
	r.mu.Lock()
	r.linkHeights = hs
	r.mu.Unlock()
	return nil
}

// forget drops what the receipts hold of an index that was wiped
// (snapshots.wipe): receipts are made before the start clears a restore
// cut short, and a rejected restore may have noted links.
func (r *receipts) forget() error {
	r.mu.Lock()
	r.newTreeCaches(r.trees.max + r.trimmed.max)
	r.headers = newLRU(r.headers.max)
	r.mu.Unlock()
	return r.loadLinks()
}

// addLink notes a change of the validator set after height h (recorded
// under xv/h by the caller).
func (r *receipts) addLink(h int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, found := slices.BinarySearch(r.linkHeights, h)
	if !found {
		r.linkHeights = slices.Insert(r.linkHeights, i, h)
	}
}

// links returns the validator set changes below height, oldest first, with
// their heights, building (and storing) each the first time it is asked
// for. The heights are kept in memory: every receipt asks.
func (r *receipts) links(ctx context.Context, height int64) ([]int64, []*proof.ValidatorSetLink, error) {
	r.mu.Lock()
	n, _ := slices.BinarySearch(r.linkHeights, height)
	hs := slices.Clone(r.linkHeights[:n])
	r.mu.Unlock()
	out := make([]*proof.ValidatorSetLink, 0, len(hs))
	for _, h := range hs {
		l, err := r.link(ctx, h)
		if err != nil {
			return nil, nil, fmt.Errorf("validator link %d: %w", h, err)
		}
		out = append(out, l)
	}
	return hs, out, nil
}

// link is the change after height h: from the cache, from the index, or
// built from the signed headers of h and h+1 and then stored.
func (r *receipts) link(ctx context.Context, h int64) (*proof.ValidatorSetLink, error) {
	key := fmt.Sprintf("link/%d", h)
	r.mu.Lock()
	v, ok := r.headers.get(key)
	r.mu.Unlock()
	if ok {
		return v.(*proof.ValidatorSetLink), nil
	}
	var raw []byte
	if err := r.db.View(func(txn *badger.Txn) error {
		var err error
		raw, err = getValue(txn, xvKey(h))
		return err
	}); err != nil {
		return nil, err
	}
	l := &proof.ValidatorSetLink{}
	if len(raw) > 0 {
		if err := proto.Unmarshal(raw, l); err != nil {
			return nil, err
		}
	} else {
		// The indexer builds the link two blocks after the change; until
		// then the block store still holds both headers.
		var err error
		if l, err = buildLink(func(h int64) (*headerEntry, error) { return r.header(ctx, h) }, h); err != nil {
			return nil, err
		}
		if err := storeLink(r.db, h, l); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	r.headers.put(key, l, len(l.SignedHeader)+48*len(l.NextValidators))
	r.mu.Unlock()
	return l, nil
}

// receiptTreeBottom is how many levels of a batch's tree the trimmed
// cache drops: it keeps the nodes of groups of 16 leaves, 4 bytes per
// leaf where the whole tree is 64, so it holds sixteen times the
// batches. A receipt then reads its leaf's group (512 bytes) from the
// leaf store and hashes it again: one pread and about 3.5 µs, where a
// batch whose tree had left the cache cost a whole tree build (2–3 ms
// for a batch of 10,000), which under random reads of older receipts
// was a fifth of the serving node's CPU.
const receiptTreeBottom = 4

// pathOf reports whether leaf index of batch ref, whose tree b holds, is
// hash, with its audit path when it is: from memory for a whole tree; for
// a trimmed one, from the leaf's group read from the leaf store. Leaves
// that do not make the tree's node are damage: the tree was built from
// the leaves when they matched the batch's root.
func (r *receipts) pathOf(txn *badger.Txn, ref batchRef, b *batchData, index uint64, hash []byte) ([][]byte, bool, error) {
	if index >= b.tree.Size() {
		return nil, false, nil
	}
	if path, err := b.tree.AuditPath(index); !errors.Is(err, proof.ErrTrimmed) {
		if err != nil || !b.tree.HasLeaf(index, hash) {
			return nil, false, err
		}
		return path, true, nil
	}
	v, err := getValue(txn, xbKey(ref.issuer, ref.seq))
	if errors.Is(err, errNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	first, count := b.tree.GroupOf(index)
	group := make([]byte, count*proof.HashSize)
	ok, err := r.index.leafStore.Leaves(v, first, group)
	if err != nil {
		return nil, false, leafStoreErr(err)
	}
	if !ok {
		return nil, false, r.index.leavesDamaged(ref.issuer, ref.seq, v, fmt.Sprintf("leaves %d to %d, which its tree has, are not in the leaf store", first, first+count-1))
	}
	path, err := b.tree.AuditPathFrom(index, group)
	if errors.Is(err, proof.ErrGroupMismatch) {
		return nil, false, r.index.leavesDamaged(ref.issuer, ref.seq, v, fmt.Sprintf("leaves %d to %d do not make the batch's tree: %v", first, first+count-1, err))
	}
	if err != nil {
		return nil, false, err
	}
	at := (index - first) * proof.HashSize
	return path, bytes.Equal(group[at:at+proof.HashSize], hash), nil
}

// batch is a batch's tree, record and proof: from the cache, from the
// build another caller is running, or built here.
func (r *receipts) batch(issuer string, seq uint64) (*batchData, error) {
	key := fmt.Sprintf("%s/%d", issuer, seq)
	r.mu.Lock()
	if v, ok := r.trees.get(key); ok {
		r.mu.Unlock()
		return v.(*batchData), nil
	}
	if v, ok := r.trimmed.get(key); ok {
		r.mu.Unlock()
		return v.(*batchData), nil
	}
	if c, ok := r.building[key]; ok {
		r.mu.Unlock()
		<-c.done
		return c.b, c.err
	}
	c := &treeBuild{done: make(chan struct{})}
	r.building[key] = c
	r.mu.Unlock()
	c.b, c.err = r.buildBatch(key, issuer, seq)
	r.mu.Lock()
	if c.err == nil {
		r.trees.put(key, c.b, c.b.size())
	}
	delete(r.building, key)
	r.mu.Unlock()
	close(c.done)
	return c.b, c.err
}

func (r *receipts) buildBatch(key, issuer string, seq uint64) (*batchData, error) {
	hashes, rec, prf, err := r.index.readBatch(issuer, seq)
	if err != nil {
		return nil, fmt.Errorf("batch %s: %w", key, err)
	}
	tree, err := proof.NewTree(hashes)
	if err != nil {
		return nil, fmt.Errorf("batch %s: %w", key, err)
	}
	var record proof.BatchRecord
	if err := proto.Unmarshal(rec, &record); err != nil {
		return nil, fmt.Errorf("batch %s record: %w", key, err)
	}
	// The leaves are read from a file of their own: a receipt never
	// proves a path from leaves that are not the batch's.
	if root := tree.Root(); !bytes.Equal(root[:], record.Root) {
		return nil, fmt.Errorf("%w: the leaves of batch %s do not make its root", errStoreDamaged, key)
	}
	return &batchData{tree: tree, record: &record, proof: prf, recordSize: len(rec)}, nil
}

func (r *receipts) header(ctx context.Context, height int64) (*headerEntry, error) {
	key := fmt.Sprint(height)
	r.mu.Lock()
	if v, ok := r.headers.get(key); ok {
		r.mu.Unlock()
		return v.(*headerEntry), nil
	}
	r.mu.Unlock()
	// The header a batch's receipts need is kept in the index (xs/) once
	// the block that signs it is indexed, or came with a snapshot: the
	// block store may have pruned it. Other heights (the newest provable
	// state, a batch whose header the indexer has not kept yet) are read
	// from the block store, which holds every height the index has not
	// passed (retention.go).
	var stored []byte
	var e *headerEntry
	if err := r.db.View(func(txn *badger.Txn) error {
		var err error
		stored, err = getValue(txn, xsKey(height))
		return err
	}); err == nil {
		var sh pb.SnapshotHeader
		if err := proto.Unmarshal(stored, &sh); err != nil {
			return nil, fmt.Errorf("stored header %d: %w", height, err)
		}
		e = &headerEntry{signedHeader: sh.SignedHeader, validators: sh.Validators}
	} else if !errors.Is(err, errNotFound) {
		return nil, err
	} else if e, err = r.consensus.ReadSignedHeader(ctx, height); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.headers.put(key, e, len(e.signedHeader)+len(e.validators)*48)
	r.mu.Unlock()
	return e, nil
}

// fetchHeader reads the signed header of height from CometBFT's stores,
// latest being the block store's height (the RPC's Status, which says the
// same, builds a whole node report and was a receipt poll's largest cost):
// the header with its canonical commit, and the validators of that height.
func fetchHeader(ctx context.Context, rpc rpcclient.Client, latest, height int64) (*headerEntry, error) {
	// Only the canonical commit, the one block height+1 carries as its last
	// commit, is the same on every node; a node's own seen commit of the
	// newest block holds the votes it happened to receive.
	if latest <= height {
		return nil, fmt.Errorf("%w (header %d is signed in block %d, chain at %d)", errNotFinal, height, height+1, latest)
	}
	c, err := rpc.Commit(ctx, &height)
	if err != nil {
		return nil, fmt.Errorf("signed header %d: %w", height, err)
	}
	if !c.CanonicalCommit {
		return nil, fmt.Errorf("%w (no canonical commit of height %d yet)", errNotFinal, height)
	}
	sh, err := c.SignedHeader.ToProto().Marshal()
	if err != nil {
		return nil, err
	}
	var vals []*proof.Validator
	for page := 1; ; page++ {
		perPage := 100
		pg := page
		res, err := rpc.Validators(ctx, &height, &pg, &perPage)
		if err != nil {
			return nil, fmt.Errorf("validators at %d: %w", height, err)
		}
		for _, v := range res.Validators {
			vals = append(vals, &proof.Validator{Ed25519PublicKey: v.PubKey.Bytes(), VotingPower: v.VotingPower})
		}
		if len(vals) >= res.Total || len(res.Validators) == 0 {
			break
		}
	}
	return &headerEntry{signedHeader: sh, validators: vals}, nil
}

// lru is a byte-bounded least-recently-used cache.
type lru struct {
	max, size int
	ll        *list.List
	items     map[string]*list.Element
	// evicted, when set, is given each entry the bound pushes out.
	evicted func(key string, v any)
}

type lruEntry struct {
	key  string
	val  any
	size int
}

func newLRU(maxBytes int) *lru {
	return &lru{max: maxBytes, ll: list.New(), items: make(map[string]*list.Element)}
}

func (c *lru) get(k string) (any, bool) {
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruEntry).val, true
	}
	return nil, false
}

func (c *lru) put(k string, v any, size int) {
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.items[k] = c.ll.PushFront(&lruEntry{k, v, size})
	c.size += size
	for c.size > c.max && c.ll.Len() > 1 {
		e := c.ll.Back()
		en := e.Value.(*lruEntry)
		c.ll.Remove(e)
		delete(c.items, en.key)
		c.size -= en.size
		if c.evicted != nil {
			c.evicted(en.key, en.val)
		}
	}
}
