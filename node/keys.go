package node

import (
	"encoding/binary"
	"fmt"
)

// The node's badger keys, in one table. Beside the application state (under
// prefixApp, written by the app through store.NewIAVLDB) the database holds
// the batches in flight and the index: data that is the node's own, not
// consensus state (that layout is proof/keys.go). The queue itself is not
// here: it is the log in data/queue (internal/queuelog), which qm marks. Issuer
// ids cannot hold '/', so every key is unambiguous, and no key or prefix
// below begins with another prefix (keys_test.go). <seq:8> and <height:8>
// are 8 bytes big-endian; <num> is a uvarint. Changing a byte here changes
// the on-disk format of every node's existing database.
//
//	qf/<issuer>/<seq:8>  signed Tx, as broadcast: a batch cut and not yet final.
//	                     Written: queueStore.cut; deleted: queueStore.requeue, land.
//	                     Read: queueStore.scan (pipeline.load at start).
//	qm                   queuelog.Mark (internal/queuelog/doc.go): version 1, top segment (8),
//	                     then segment (8) and synced size (8) per segment.
//	                     Written: newQueueStore's SaveMark; read: queueStore.scan.
//	xn<num>              encodeBatchRef: seq (8), height (8), issuer: what a node-local
//	                     batch number stands for (numbers are given in indexing order).
//	                     Written: indexer.writePositions; read: batchNumbered
//	                     (lookup.batch, index.batchLeaves, leafLogEnd).
//	xc                   the next batch number (8), written with xh.
//	                     Written: indexer.index; read: storedNextBatch.
//	xb/<issuer>/<seq:8>  encodeLeafLocCRC: offset (8), length (4), CRC-32C (4) of the batch's
//	                     leaves in the leaves log; an earlier version wrote the location
//	                     alone (12 bytes) or the leaves themselves (a multiple of 32), both
//	                     still read (decodeLeafLoc). Written: indexer.writePositions;
//	                     read: index.leavesOf, lookup.holdsLeaf, leafLogEnd.
//	xr/<issuer>/<seq:8>  the BatchRecord bytes as stored in state.
//	                     Written: indexer.writePositions; read: api.GetBatch,
//	                     indexer.checkLastBatch, index.checkLeaves, index.readBatch;
//	                     scanned: indexer.backfillHeaders.
//	xp/<issuer>/<seq:8>  the ICS23 proof of the record at its height.
//	                     Written: indexer.writePositions; read: index.readBatch.
//	xs/<height:8>        SnapshotHeader: the signed header that proves the batches of
//	                     height-1, its canonical commit and validators (retention.go).
//	                     Written: setHeader (keepHeaders, backfillHeaders),
//	                     snapshots.restoreHeaders; read: receipts.header,
//	                     indexer.backfillHeaders, snapshots.restoreAll.
//	xw/<height:8>        empty: a header to keep once block height+1 is indexed.
//	                     Written: keepHeaders, backfillHeaders, snapshots.restoreAll;
//	                     read and deleted: keepHeaders.
//	xv/<height:8>        ValidatorSetLink, empty until built two blocks later: the
//	                     validator set changes after height. Written:
//	                     indexer.noteValidatorChange (empty), keepHeaders, storeLink,
//	                     backfillHeaders, snapshots.restoreAll; read: receipts.link,
//	                     keepHeaders; scanned: receipts.loadLinks, backfillHeaders.
//	xk                   empty: the headers of batches indexed before headers were kept
//	                     have been kept too. Written: backfillHeaders, snapshots.restoreAll;
//	                     read: backfillHeaders.
//	xh                   the last height indexed (8).
//	                     Written: indexer.index; read: indexedHeight.
//	xt                   seq (8), issuer: the last batch indexed, which the start-up check
//	                     compares across the stores. Written: indexer.index; deleted:
//	                     snapshots.restoreAll; read: indexer.checkLastBatch (integrity.go).
//	xq                   restoreBegun (1) or restoreDone (2), one byte: see keyRestoring.
//	                     Written: snapshots.setRestoreMark, restoreAll; deleted:
//	                     snapshots.confirmRestore; read: snapshots.restoreMark.
//	ng                   SHA-256 of the genesis file the node first started with.
//	                     Written and read: pinGenesis (guard.go).
//	nr                   1, one byte: see keyDataRecreated. Written and read:
//	                     noteDataStarted; deleted: dataLossReported (backup_start.go).
//
// Keys an earlier version wrote, read once at start and deleted:
//
//	qp/<issuer>/<qseq:8>     a queued hash (32): queueStore.migrate moves them into the
//	                         queue log (data/queue).
//	xl<tag:8><num><index>    no value: a leaf's position, index being a uvarint;
//	                         index.dropOldPositions drops them and the positions
//	                         index (data/index) is rebuilt from xn and xb/.
//
// Where each anchored hash is, is not a key: it is in the positions index's
// run files (data/index, internal/positions), derived from xn and xb/.
const (
	prefixApp = "a/"

	// prefixWiped holds everything derived from the chain: a rejected
	// snapshot restore drops it with prefixApp (snapshots.wipe). The
	// batches in flight, the queue's mark and the operator guards (q…,
	// n…) lie outside it and survive.
	prefixWiped = "x"

	prefixInFlight = "qf/"
	keyQueueMark   = "qm"

	prefixBatchNumber  = "xn"
	keyNextBatch       = "xc"
	prefixBatchLeaves  = "xb/"
	prefixBatchRecord  = "xr/"
	prefixBatchProof   = "xp/"
	prefixKeptHeader   = "xs/"
	prefixWantedHeader = "xw/"
	prefixValidatorSet = "xv/"
	keyHeadersKept     = "xk"
	keyIndexed         = "xh"
	keyLastBatch       = "xt"

	// keyRestoring records a restore this node has not finished with:
	// begun, or done but with no block committed on it yet. CometBFT saves
	// its own state only after the restore returns, so a stop in between
	// leaves a restored state beside an empty consensus state; that state
	// came from this node's restore and goes when it restores again. The
	// key lies under prefixWiped, so a wipe clears it.
	keyRestoring = "xq"

	// keyGenesis lies outside prefixApp and prefixWiped: a genesis pinned
	// stays pinned through a rejected restore.
	keyGenesis = "ng"

	// keyDataRecreated notes, in a node database created on a home that
	// had started before, that the loss of data/ was not yet reported by a
	// start that completed.
	keyDataRecreated = "nr"

	prefixOldQueue     = "qp/"
	prefixOldPositions = "xl"
)

func issuerSeqKey(prefix, issuer string, seq uint64) []byte {
	k := make([]byte, 0, len(prefix)+len(issuer)+9)
	k = append(append(append(k, prefix...), issuer...), '/')
	return binary.BigEndian.AppendUint64(k, seq)
}

// splitIssuerSeq reads a key issuerSeqKey built under prefix.
func splitIssuerSeq(key []byte, prefix string) (string, uint64, error) {
	rest := key[len(prefix):]
	if len(rest) < 10 || rest[len(rest)-9] != '/' {
		return "", 0, fmt.Errorf("corrupt key %q", key)
	}
	return string(rest[:len(rest)-9]), binary.BigEndian.Uint64(rest[len(rest)-8:]), nil
}

func heightKey(prefix string, height int64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefix), uint64(height))
}

// The key builders are named after the bytes their keys begin with, as
// the table above is.
func qfKey(issuer string, seq uint64) []byte  { return issuerSeqKey(prefixInFlight, issuer, seq) }
func qpKey(issuer string, qseq uint64) []byte { return issuerSeqKey(prefixOldQueue, issuer, qseq) }
func xnKey(num uint64) []byte                 { return binary.AppendUvarint([]byte(prefixBatchNumber), num) }
func xbKey(issuer string, seq uint64) []byte  { return issuerSeqKey(prefixBatchLeaves, issuer, seq) }
func xrKey(issuer string, seq uint64) []byte  { return issuerSeqKey(prefixBatchRecord, issuer, seq) }
func xpKey(issuer string, seq uint64) []byte  { return issuerSeqKey(prefixBatchProof, issuer, seq) }
func xsKey(height int64) []byte               { return heightKey(prefixKeptHeader, height) }
func xwKey(height int64) []byte               { return heightKey(prefixWantedHeader, height) }
func xvKey(height int64) []byte               { return heightKey(prefixValidatorSet, height) }

// xvHeight is the height an xv/ key was built with.
func xvHeight(key []byte) int64 {
	return int64(binary.BigEndian.Uint64(key[len(prefixValidatorSet):]))
}
