package consensus

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"github.com/cometbft/cometbft/abci/example/kvstore"
	"github.com/cometbft/cometbft/mempool"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/p2p/mock"
	protomem "github.com/cometbft/cometbft/proto/tendermint/mempool"
)

// TestMempoolReactorDropsDuplicates runs the node's mempool reactor, as the
// switch holds it, over a real mempool and app: the first copy of a
// transaction enters the mempool through CometBFT's reactor, a second copy
// from another peer is dropped and counted, a copy the cache no longer
// holds is checked and taken again, and a transaction the app refuses is
// never counted or taken, however often it comes.
func TestMempoolReactorDropsDuplicates(t *testing.T) {
	c := soloHome(t)
	n, dbs, err := NewNode(context.Background(), c, kvstore.NewInMemoryApplication(), slog.New(slog.DiscardHandler), DBOptions{Memory: DefaultDBMemory})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbs.Close() })

	onSwitch, ok := n.Switch().Reactor("MEMPOOL")
	if !ok {
		t.Fatal("no MEMPOOL reactor on the switch")
	}
	r, ok := onSwitch.(*mempoolReactor)
	if !ok {
		t.Fatalf("the switch's MEMPOOL reactor is %T, want the wrapper", onSwitch)
	}
	// State sync's switch-on reaches the node's own reactor, and block
	// sync's (through the switch) reaches the same object.
	if r.Reactor != n.MempoolReactor() {
		t.Error("the wrapper's inner reactor is not the one the node keeps")
	}
	if _, ok := onSwitch.(interface{ EnableInOutTxs() }); !ok {
		t.Error("the switch's MEMPOOL reactor has no EnableInOutTxs")
	}
	if _, ok := onSwitch.(p2p.MsgBytesFilter); !ok {
		t.Error("the switch's MEMPOOL reactor is no MsgBytesFilter")
	}

	peer1, peer2 := mock.NewPeer(net.IP{127, 0, 0, 2}), mock.NewPeer(net.IP{127, 0, 0, 3})
	send := func(from p2p.Peer, txs ...string) {
		msg := &protomem.Txs{}
		for _, tx := range txs {
			msg.Txs = append(msg.Txs, []byte(tx))
		}
		onSwitch.Receive(p2p.Envelope{Src: from, ChannelID: mempool.MempoolChannel, Message: msg})
	}
	check := func(step string, size int, dropped uint64) {
		t.Helper()
		if got := n.Mempool().Size(); got != size {
			t.Errorf("%s: mempool holds %d transactions, want %d", step, got, size)
		}
		if got := MempoolDuplicates(n); got != dropped {
			t.Errorf("%s: %d duplicates dropped, want %d", step, got, dropped)
		}
	}

	send(peer1, "a:1")
	check("first copy", 1, 0)
	send(peer2, "a:1")
	check("second copy", 1, 1)
	send(peer1, "a:1", "b:2")
	check("a copy and a new one in one message", 2, 2)

	n.Mempool().Flush() // empties the cache too
	send(peer2, "a:1")
	check("copy after the cache let it go", 1, 2)

	for range 3 {
		send(peer1, "refused")
	}
	check("refused by the app", 1, 2)
}

func TestFingerprintsKeepTheNewest(t *testing.T) {
	f := newFingerprints(2)
	for _, tx := range []string{"a", "b"} {
		if !f.add([]byte(tx)) {
			t.Fatalf("%s: not new", tx)
		}
	}
	if f.add([]byte("a")) {
		t.Error("a again: new")
	}
	f.add([]byte("c")) // a, the oldest, goes
	if !f.add([]byte("a")) {
		t.Error("a after c: not new, want forgotten")
	}
	if f.add([]byte("c")) {
		t.Error("c again: new")
	}
	if len(f.set) != 2 {
		t.Errorf("%d fingerprints kept, want 2", len(f.set))
	}
}
