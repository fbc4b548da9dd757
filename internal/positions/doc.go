// Package positions is the positions index: where every anchored hash is,
// as one 16-byte entry per leaf (a tag of the hash, its batch's number,
// its index in the batch), kept in sorted run files in one directory (the
// node's data/index) and, for the batches added since the last run was
// written, in memory. It is derived data: the node's database holds the
// batches' leaves and numbers, and hands them back through
// Options.Rebuild, so a run lost or damaged is rebuilt at Open, never
// refused. The package knows nothing of that database.
//
// A tag is not unique, even within a batch: Candidates returns every
// position under a tag, and the caller confirms each against the batch's
// leaves before it answers. The entry holds neither the whole hash nor the
// issuer; the node keeps those once per batch.
//
// # Entries
//
// An entry is two big-endian 64-bit words, 16 bytes:
//
//	bytes 0–7   tag (Options.Tag of the hash; by default the first 8 bytes
//	            of its SHA-256)
//	bytes 8–15  batch number << 24 | leaf index
//
// so a batch number is below 2^40 and a leaf index below 2^24 (a batch
// holds at most 4 MiB / 32 = 131,072 leaves); Add refuses a batch beyond
// either. Entries sort by their 16 bytes: by tag, then batch, then leaf.
//
// The default tag is taken from the SHA-256 of the hash, not from the hash
// itself: submitters choose the hashes, and could otherwise pile up
// entries under the tag of another issuer's hash so that each lookup of it
// walked them all. Runs hold tags, so a directory must be opened with the
// same tag function every time.
//
// # Run files
//
// A run holds the entries of batches [lo, hi) and is named
//
//	<lo>-<hi>.run    lo and hi as 16 lowercase hexadecimal digits each
//
// (RunBatches reads a name back). It has no header:
//
//	count × 16 bytes  the entries, sorted, every one of a batch in [lo, hi)
//	40 bytes          the footer:
//	                    0–7    magic "CRDXRUN1"
//	                    8–15   count, big-endian
//	                    16–23  lo, big-endian
//	                    24–31  hi, big-endian
//	                    32–35  CRC-32C (Castagnoli), big-endian, of the
//	                           entries and footer bytes 0–31
//	                    36–39  zero
//
// so a run is exactly 16 × count + 40 bytes. A run of no entries is valid:
// it says batches [lo, hi) hold none (Reset writes [0, next) so after a
// wipe nothing below next is rebuilt). The entries are read in blocks of
// 256 (4 KiB), a unit of reading only, not of the format: at Open the
// index keeps the first tag of each block (8 bytes per 256 entries, 312
// KiB per 10^7 hashes), and a lookup reads with one pread the block before
// the first whose first tag is the tag or more, and the blocks after while
// their first tag is the tag.
//
// A run is written as <name>.tmp (created, truncated), 64 KiB at a time,
// then the footer; the file is synced, renamed to its name and the
// directory synced. Only then is it installed (searched, counted as
// covering its batches). Run files are never changed after.
//
// # Memory and merges
//
// The runs and memory cover [0, Next()) without gap or overlap: the runs
// in order of lo, each starting where the one before ends, and memory
// ("recent") from the last run's hi. Recent holds each batch's entries as
// a sorted part, merging the last two parts while the one before is at
// most twice the last, so a lookup searches O(log n) parts. When recent
// passes Options.RecentEntries it is frozen (still searched) and a
// background writer writes it as a run; up to two frozen sets wait, and
// Add waits beyond, so memory stays bounded when adding outruns the disk
// (about 5 × RecentEntries × 16 bytes at worst, counting a merge of
// parts). The writer then merges adjacent runs while the older holds at
// most twice the newer's entries, so there are O(log n) runs; a merge
// reads both as streams and writes the merged run as above. The two runs
// it replaces are removed only once the merged one is installed, then the
// directory is synced. A reader never sees a closed file: the run list
// changes under the write lock, and lookups read runs under the read lock.
//
// The writer's first failure (a run that cannot be created, written,
// synced or renamed) stops it: Add fails from then on with an error
// beginning "index run: " that wraps the file system's, until the index
// is opened again. The node refuses new hashes meanwhile rather than hold
// positions only in memory.
//
// # Crashes and Open
//
// Open(dir, next) is given the next batch number the node stored; every
// number below it holds a batch or nothing. It reads every file of dir:
//
//   - a .tmp: a write or merge cut short, never installed: removed;
//   - a run with hi > next: written before the crash came between the
//     batch's write and the store of the next number, which may now go to
//     other batches: removed, its batches added again by the node;
//   - a run that fails any check (size, magic, count, the footer's lo and
//     hi against the name, order, batch numbers in range, CRC): removed,
//     with a warning;
//   - other names: left alone.
//
// The runs left are sorted by lo, the widest first among those starting
// together, and taken in order; a run starting below where the ones taken
// so far end is inside a wider one (a merge cut short after the merged run
// was installed) and is removed. A gap between runs is rebuilt from
// Options.Rebuild as new runs of at most about RecentEntries entries
// (merged later in the background), and the batches after the last run,
// up to next, are read back into memory. So a crash at any point leaves
// an index that Open completes: mid-write, the batch's entries are only
// in memory and rebuilt; mid-merge, the inputs or the merged run (or
// both) are there. Open reads every run whole to check it: its cost grows
// with the index.
//
// # The filter
//
// Filter is a Bloom filter over the tags of every entry held, in front of
// the duplicate check: nearly every submitted hash is new, and a "no" here
// is certain, so the lookup is skipped; a "maybe" falls through to the
// lookup, so answers never depend on the filter, only their cost does.
// There are no false negatives: AttachFilter adds every tag held, and Add
// then gives the filter each tag before the entry is searchable. The
// words are atomic, so Add and MayHold need no lock between them.
//
// It is blocked: NewFilter(mb) has mb·2^20 / 64 blocks of 512 bits (one
// cache line), and each tag sets 7 bits in one block, so a check is one
// memory access, for a slightly higher false positive rate than bits
// spread over the whole array. The tag is already hash output, so its bits
// serve as the hash functions: the block is the high bits of tag × blocks
// (multiply-shift), and the bits within it are (h1 + i·h2) mod 512 for
// i < 7, h1 the tag's low 32 bits and h2 its high 32 bits made odd. Sized
// at 10 bits per tag, about 1 % of absent tags pass (7 probes is the
// optimum there); past that capacity the rate rises and more lookups are
// made. Nothing is removed: a batch added again after a crash, or an index
// Reset, leaves bits set, which are only false positives.
package positions
