package node

import (
	"bytes"
	"testing"
)

// A queue backup holds the batches in flight as well as the queue: a hash
// cut into a batch the chain has not committed is in no queue and in no
// index, and only this node's qf/ holds it.
func TestQueueBackupHoldsBatchesInFlight(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	defer s.close()
	a := s.hashList([]string{"a1", "a2", "a3", "a4", "a5", "a6"})
	b := s.hashList([]string{"b1"})
	s.submit([]*submitReq{{issuer: "uni-a", hashes: a[:5*32]}, {issuer: "uni-b", hashes: b}})
	// Cut (batch_max_leaves 4) and sent; the fake chain commits nothing.
	s.p.tick()
	s.submit([]*submitReq{{issuer: "uni-a", hashes: a[5*32:]}})
	if len(s.p.inflight["uni-a"]) == 0 || len(s.p.inflight["uni-b"]) == 0 {
		t.Fatalf("no batch in flight after the tick:\n%s", s.out)
	}
	var buf bytes.Buffer
	n, err := writeQueueBackup(&buf, "credence-test", s.p.unanchored())
	if err != nil {
		t.Fatal(err)
	}
	chainID, queues, err := readQueueBackup(bytes.NewReader(buf.Bytes()), 100)
	if err != nil {
		t.Fatal(err)
	}
	if n != 7 || chainID != "credence-test" || len(queues) != 2 ||
		queues[0].issuer != "uni-a" || !bytes.Equal(queues[0].hashes, a) ||
		queues[1].issuer != "uni-b" || !bytes.Equal(queues[1].hashes, b) {
		var got []string
		for _, q := range queues {
			got = append(got, q.issuer+": "+s.nameAll(q.hashes))
		}
		t.Fatalf("backup of %d hashes holds %q, want uni-a: a1…a6 (in flight, then queued) and uni-b: b1", n, got)
	}
}
