// Package node is the Credence daemon: CometBFT with the app in process, the
// durable submission queue, the batcher, the index and the gRPC API, with
// its HTTP/JSON face (http.go) calling that API in process.
//
// # The life of a hash
//
// A credential hash crosses three stages of this node, each in its own
// file, around one shared state (pipeline.go): the hashes queued, the
// batches in flight, and the waiting set (every hash queued or in flight,
// per issuer: the duplicate check). Each stage writes the database before
// it changes that state, so between any two steps the two agree, and a
// restart rebuilds the state from the database alone.
//
//	Submit ─▶ commitGroup ═▶ queue (log) ─▶ tick: cut ═▶ in flight (qf/) ─▶ send
//	  ─▶ mempool ─▶ block ─▶ commit queue ─▶ index ═▶ positions (internal/positions) ─▶ release
//	  ─▶ GetReceipt
//
//	═▶ synced (queue, cut) or flushed (index) before the next step
//
// Step by step, with the function at each step, what it guarantees, and
// what a crash there leaves (qf/, xb/, xn and the like are keys of the
// node's badger database: keys.go lists each with its value, writers and
// readers):
//
//  1. api.Submit → pipeline.submit hands the request to the group commit
//     (commitLoop) and waits. commitGroup: claimUnseen answers a hash
//     already waiting as pending and claims the rest (a repeat of a hash
//     claimed in the same group is answered as that claim is);
//     separateAnchored
//     answers those the index holds as anchored (looking up only those the
//     anchored filter, positions.Filter, may hold); writeQueue appends the
//     others to the queue log as one record and syncs it; enqueue hands
//     them to the batcher. A lookup that meets damaged leaves refuses
//     only the requests holding that hash (DataLoss); the rest of the
//     group is queued.
//     A request that could take the waiting set past max_queued_hashes is
//     refused whole (ResourceExhausted) before anything of it is claimed.
//     Invariant: a hash is acknowledged as queued only after the sync.
//     Crash before the sync: no answer was given; the client retries, and
//     a hash that survived is answered pending; a record torn by the crash
//     is cut off at start. A failed write or sync cuts the record back off
//     and refuses the group: nothing of it is queued.
//
//  2. pipeline.tick (every batch_interval, or at once when a queue holds
//     batch_max_leaves) → settle, then cut: the signed AnchorBatch is
//     written under qf/ and synced, and only then send hands it to the
//     mempool (chain.Broadcast). The log is not rewritten: a segment goes
//     (collect) once every hash in it is in a synced batch.
//     Invariant: a batch is sent only once it is durable in flight.
//     Crash after the cut: load finds it in flight, unsent, and the first
//     settle sends it again.
//
//  3. Consensus commits the batch; the app's commit hook,
//     commitQueue.push, only queues the block. indexer.run →
//     indexBlock → indexBatches writes the batch (xb/, xr/, xp/) and its number
//     (xn), adds each leaf's position to the positions index (in memory,
//     later a run file in data/index: internal/positions), then takes the batch out of
//     flight (qf/) with the indexed height (xh), and only then release
//     ends the hashes' wait.
//     Invariant: a hash is indexed before it stops waiting, so a reader
//     (GetReceipt, a repeated Submit) finds it in one or the other.
//     keepHeaders keeps, as each block is indexed, the signed headers and
//     validator links receipts need (retention.go), so that CometBFT may
//     prune blocks behind the index (nodeApp.Commit's retain height).
//     Crash before the index write: the batch is still in flight, and
//     catchUp indexes the block from the block store at the next start.
//     The positions are derived: those only in memory, and any run file
//     damaged or reaching past the stored next batch number (xc), are
//     rebuilt from xb/ and xn at start.
//     A failed index write is retried with backoff (index_retry_min to
//     index_retry_max); while it fails Submit answers Unavailable before
//     queuing anything, health is NOT_SERVING and NodeInfo's problems say
//     why (liveness.go).
//
//  4. settle, at each tick, decides what committed state tells of a batch
//     in flight: when the chain gave its sequence to another batch
//     (another node with the same issuer key), requeue puts its hashes
//     back at the head of the queue; one not final after
//     rebroadcast_after is sent again. Each tick also asks the app whether
//     the configured issuer key may still sign (App.CanSign): when it may
//     not (rotated away, issuer suspended), that issuer's Submit answers
//     FailedPrecondition and nothing of it is cut; a batch that CheckTx
//     refuses as signed by another key is requeued and re-signed at once.
//     Invariant: a batch leaves flight only when indexed with its own
//     root, or requeued; an acknowledged hash is never dropped.
//
//  5. api.GetReceipt → receipts.build finds the position (anchoredAt) and
//     proves it; a hash not indexed but waiting is "not yet final".
//     Every read of stored leaves, whole or the one 32-byte read that
//     confirms a duplicate, is checked against the batch's checksum (or
//     its root) first (leafcheck.go): damage answers DataLoss, never "not
//     anchored" or "already anchored".
//
// At start (Start), the parts are made in the order they need each other,
// each given what it needs by its constructor: the node's database; the
// index (openIndex: the leaf store, the positions index and the anchored
// filter); the commit queue, which the app's commit hook feeds; the app;
// the pipeline (newPipeline); receipts; the indexer (newIndexer); the
// snapshots; CometBFT, which takes the app with the snapshots. Only the
// chain (consensusChain) is linked afterwards (attach): CometBFT, made
// last, takes the app, while the chain reads CometBFT's block store and
// RPC; a read before that answers an error. Each part pushes its closer on
// one stack (closers), which Stop, and a start that fails halfway, unwind.
// Then pipeline.load has read the batches in flight and replayed the queue
// log, dropping the hashes in flight; indexer.catchUp indexes the blocks
// committed but not indexed, and pipeline.reconcile drops from the queue
// any hash indexed meanwhile (or cut and anchored before the stop, in a
// segment kept by others); only then do the group commit, the batcher and
// the index writer run.
//
// The pipeline reaches the app and CometBFT through two interfaces, chain
// (the batcher's) and blockSource (the indexer's), which consensusChain
// implements; receipts read the headers the index does not hold through a
// third, headerReader. The scenarios in testdata/pipeline run the three stages over
// a fake chain, step by step; they are the place to learn the pipeline
// and to reproduce a fault.
package node
