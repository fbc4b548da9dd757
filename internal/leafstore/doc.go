// Package leafstore is the leaf store: the leaves (32-byte hashes) of every
// batch the node indexes, appended once to plain segment files and read
// back through the location the node keeps for each batch in its database.
//
// Kept as badger values instead (32 bytes a hash, hundreds of KB a batch),
// every batch's leaves were carried through the memtable, the level-0
// table and each compaction after it: the largest share of a validator's
// CPU left once the positions moved out, and table builders of tens of MB.
// Written here, they are written once and read with one pread.
//
// # Segments
//
// The store is a directory (the node's data/leaves) of segment files named
// by their number as 16 lower-case hex digits: 0000000000000000.leaves,
// 0000000000000001.leaves, and so on. Other names are ignored. A segment
// holds the leaves of consecutive batches, concatenated, nothing else: no
// header, no framing, no checksum in the file. Segment n covers the global
// offsets [n, n+1) × SegmentBytes (Options; 1 GiB by default), so a
// global offset names its segment and the offset in it. A batch never spans
// two segments: when it does not fit in what is left of the last one, the
// append starts the next segment, and the rest of the last is never
// written (its file is simply shorter than SegmentBytes). The segment size
// is therefore part of the format: a store must be opened with the size it
// was written with.
//
// The store ends at the largest (segment start + file size) among its
// segments; appends continue from there.
//
// # Locations
//
// The node keeps, for each batch, a value that locates its leaves (in
// badger, under xb/<issuer>/<seq>). Its size tells its form:
//
//   - 16 bytes: offset (8, big-endian; global), length in bytes (4,
//     big-endian), CRC-32C (Castagnoli) of the leaves as appended (4,
//     big-endian). What Append returns.
//   - 12 bytes: offset (8) and length (4) alone, as an earlier version
//     wrote them; read as before, and checked by the node against the
//     batch's root, as there is no checksum to check.
//   - a nonzero multiple of 32 bytes: the leaves themselves, as a still
//     earlier version kept them in badger; they read as they are, covered
//     by badger's own checksums.
//
// Leaves are never 12 or 16 bytes, so the three cannot be confused. A
// location's length is a nonzero multiple of 32; any other length, or a
// value of any other size, is damage (ErrDamaged), never a short batch.
//
// # Crashes and damage
//
// The store is append-only, and the node writes it in this order: append
// a batch's leaves, Sync, and only then write the value that locates them.
// So every value the node holds points at synced bytes. A crash between
// the two leaves appended bytes no value points at: the batch is indexed
// again at the next start and its leaves appended after them; they stay as
// unreferenced bytes.
//
// At open the node passes end: where the leaves of the last batch it has
// numbered end (End of that batch's value). A store that does not reach
// that far lost synced appends (a file cut short or removed) and is
// refused (ErrDamaged); the node then refuses to start.
//
// Nothing is ever cut at open, not even past end: the index that says
// where the store ends is itself the thing most likely to be behind (a
// crash took back batch numbers) or damaged, and cutting the store back to
// it would turn one damaged value into the loss of every batch after it.
// The only way bytes leave the store is Reset, after the node wiped the
// batches that pointed at them.
//
// A segment is a plain file: a byte changed in it would read back as the
// batch's without a word. So every read of a batch's leaves is checked
// before it is used: against the CRC-32C its location holds
// (Location.Matches), or, for a 12-byte location or a mismatch, by the
// node against the batch's root. The one 32-byte read (Leaf) a duplicate
// check makes is not checked here; the node checks the batch whole first.
//
// Errors that mean the store is damaged (cut short, a location past its
// end, a value of no known form) wrap ErrDamaged. Their texts name "the
// leaves log", the store's earlier name, which operators' tooling and the
// node's tests match.
package leafstore
