package consensus

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/cometbft/cometbft/abci/example/kvstore"
	"github.com/cometbft/cometbft/mempool"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/p2p/mock"
	protomem "github.com/cometbft/cometbft/proto/tendermint/mempool"

	"github.com/credence-ledger/credence/internal/store"
)

// BenchmarkMempoolDuplicate is the cost of one relayed copy of an anchor
// transaction's size (9,000 hashes, about 300 KB) that the mempool
// already holds: through CometBFT's reactor, and through the node's.
//
//	go test -tags badgerdb -run '^$' -bench MempoolDuplicate ./consensus/
func BenchmarkMempoolDuplicate(b *testing.B) {
	c := soloHome(b)
	n, dbs, err := NewNode(context.Background(), c, kvstore.NewInMemoryApplication(), slog.New(slog.DiscardHandler), DBOptions{Memory: DefaultDBMemory})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dbs.Close() })
	sw, _ := n.Switch().Reactor("MEMPOOL")
	r := sw.(*mempoolReactor)
	tx := append([]byte("k:"), bytes.Repeat([]byte{'a'}, 9000*32)...)
	env := func(from p2p.Peer) p2p.Envelope {
		return p2p.Envelope{Src: from, ChannelID: mempool.MempoolChannel, Message: &protomem.Txs{Txs: [][]byte{tx}}}
	}
	first, again := mock.NewPeer(net.IP{127, 0, 0, 2}), mock.NewPeer(net.IP{127, 0, 0, 3})
	r.Receive(env(first))
	if n.Mempool().Size() != 1 {
		b.Fatal("transaction not in the mempool")
	}
	for name, receive := range map[string]func(p2p.Envelope){"cometbft": r.Reactor.Receive, "credence": r.Receive} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(tx)))
			for b.Loop() {
				receive(env(again))
			}
		})
	}
}

// BenchmarkBlockStoreParts writes 21 MiB blocks in 64 KiB parts, as
// CometBFT's block store does, with badger's value threshold and with the
// block store's, and reports the process CPU per block (compactions and
// flushes run on badger's goroutines, outside ns/op).
//
//	go test -tags badgerdb -run '^$' -bench BlockStoreParts -benchtime 20x ./consensus/
func BenchmarkBlockStoreParts(b *testing.B) {
	for _, threshold := range []int64{store.DefaultValueThreshold, blockStoreValueThreshold} {
		b.Run(fmt.Sprintf("threshold=%d", threshold), func(b *testing.B) {
			dir := b.TempDir()
			db, err := store.OpenBadger(dir, store.WithMemory(DefaultDBMemory), store.WithLogger(slog.New(slog.DiscardHandler)), store.WithValueThreshold(threshold))
			if err != nil {
				b.Fatal(err)
			}
			bdb := newBadgerDB(db, 0, slog.New(slog.DiscardHandler))
			part := bytes.Repeat([]byte{0x5a}, 64<<10)
			const parts = 336 // 21 MiB
			start := cpuTime()
			h := 0
			b.SetBytes(parts * int64(len(part)))
			for b.Loop() {
				// CometBFT saves a block in one batch; badger splits it.
				batch := bdb.NewBatch()
				for i := range parts {
					if err := batch.Set(fmt.Appendf(nil, "P:%d:%d", h, i), part); err != nil {
						b.Fatal(err)
					}
				}
				if err := batch.WriteSync(); err != nil {
					b.Fatal(err)
				}
				batch.Close()
				h++
			}
			// What the writes left to flush and compact is part of their cost.
			if err := bdb.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64((cpuTime()-start).Milliseconds())/float64(h), "cpu-ms/block")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
