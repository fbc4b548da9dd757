// Package queuelog is the node's durable submission queue on disk: an
// append-only log of segments, each a run of checksummed records of
// (issuer, queue position, hash). Each group commit appends one write and
// syncs it before any of its hashes is acknowledged, so a hash costs 32
// bytes of sequential write instead of a database key set and later
// deleted.
//
// # Segments
//
// The log is the files <dir>/<n>.log, n a segment number written as 20
// decimal digits with leading zeros (00000000000000000001.log), counting
// up by one from 1 and never used twice. Other names in dir, directories,
// and n = 0 are ignored; <n>.log.lost is a segment the operator gave up
// (below). A segment is records back to back, nothing before, between or
// after them, created with mode 0600 (the directory 0700 if missing).
// Appends go to the last segment; the next number is started when there is
// none to append to (none yet, or Collect deleted it), or when a write
// would take the last past Options.SegmentSize (a write larger than that
// fills a segment alone).
//
// # Records
//
// A record, all integers big-endian:
//
//	offset  size  field
//	0       4     length: of the body, 1 to the largest body (below)
//	4       4     crc: CRC-32C (Castagnoli) of the body
//	8       len   body: one or more runs, back to back, filling it exactly
//
// A run is one issuer's hashes at consecutive queue positions:
//
//	0       2     issuer length k, 1 to 65535
//	2       k     issuer id
//	2+k     8     queue position of the first hash
//	10+k    4     count c, at least 1
//	14+k    32×c  the hashes; the i-th (from 0) is at position first+i
//
// Append starts a new run wherever the issuer changes or a position does
// not follow the one before, so runs of one record may repeat an issuer.
// A record is read whole or not at all: a body that does not parse into
// runs is bad like one whose checksum fails. The same hash may be in the
// log more than once (queued again after its batch failed, at a higher
// position); the log hands out every copy and the reader keeps the last.
//
// The largest body is min(MaxRecordHashes × 110, 2^31) bytes: each hash
// a run of its own at worst, 32 bytes of hash plus 78 of run header
// (2 + an issuer id of up to 64 bytes + 8 + 4). One Append writes one
// record per at most that many bytes, all in one write and one sync, so a
// larger group is read back as several records; a crash that tore them
// keeps the whole ones, whose hashes were never acknowledged and are
// found queued when the append is retried.
//
// # The mark
//
// The log alone cannot tell a truncated or lost segment from a crash, so
// its owner keeps a mark (Options.SaveMark; the node keeps it in its
// database under the key "qm"): the segments that must be on disk and how
// many synced bytes each held. Encoded, integers big-endian:
//
//	0       1     version, 1
//	1       8     top: the highest segment number created
//	9+16i   8     a segment number, 1 to top, ascending
//	17+16i  8     its synced length in bytes, below 2^63
//
// It lists each segment that still holds queued hashes (Hold, Release),
// and the last segment while it is empty: those Collect leaves. A mark of
// another length or version, or listing a segment outside 1 to top, is
// refused (DecodeMark).
//
// The mark is written where the owner syncs anyway, so no group commit
// pays for it: whenever the owner calls Mark (the node: at each batch cut,
// before the sync that precedes Collect; at start; at a clean stop), and
// by the log itself when it starts a segment, then synced at once
// (durable), before any record in the segment is acknowledged: a lost
// segment is then never taken for one not yet written.
//
// # Crash and damage
//
// A crash leaves one thing only: a torn tail, the end of the last segment
// after its last synced record, with no whole record after it (every
// record is synced before the next is written, and a failed append is cut
// back off before the next). Replay cuts it off (Replayed.Torn), and syncs
// the cut. A bad record at offset o of the last segment is a torn tail
// only when all of these hold:
//
//   - o is at or past the length the mark says the segment held synced;
//   - its length is at most the largest body (a torn write leaves the
//     length its append wrote, or zeros);
//   - no whole, well-formed record starts at any byte after o (the search
//     checksums candidate bodies of at most four times the file's length
//     plus 1 MiB in all);
//   - it runs to the end of the file (its header is cut short, or its
//     length reaches past the end), or everything from o on is zeros (the
//     file grew before its data reached the disk).
//
// Anything else is damage, and Replay refuses, changing nothing on disk,
// with an error wrapping ErrDamaged (the node puts "store damaged: " in
// front) that reads
//
//	queue log <file>: offset <o>: <what>; the queue held acknowledged hashes
//	not yet anchored there: restore the file from a backup of data/queue, or,
//	to give up its hashes (their issuers submit them again), move it aside as
//	<file>.lost (for a missing file, create an empty one of that name)
//
// on one line. Damage is: a bad record in a segment other than the last;
// a bad record of the last that is not a torn tail; a segment the mark
// lists that is missing (offset 0), or shorter than its synced length
// (offset: its length); a missing number among the segments above the
// mark's top, up to the highest on disk (offset 0). A segment missing
// whose <file>.lost exists is given up: not asked for, and listed in
// Replayed.Lost. Without a mark, no missing segment is seen.
//
// What no mark vouches for is the residual window: the records appended
// since the last mark was written, which after a crash are those
// acknowledged since the last cut (normally under one batch_interval of
// them), and a whole log that never had a mark (written by a version
// before the mark). Truncation or damage there that looks like a torn
// write is taken for one, and those hashes are lost unseen.
//
// # Deleting segments
//
// Collect deletes every segment none of whose hashes is still queued (its
// count, Hold less Release, is zero), the last one too (the next append
// starts a new one), and syncs the directory. A segment the last mark
// listed stays until a later mark leaves it out; when a mark could not be
// written nothing goes until one is, nor while a failed append is not cut
// back off. The owner calls Collect only after
// the sync that made durable both where the hashes went (the node: the
// batches cut) and a mark without the segment, and the mark never lists a
// segment Collect may delete; so a crash anywhere leaves a mark the disk
// satisfies.
package queuelog
