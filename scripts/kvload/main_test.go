package main

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/cometbft/cometbft/abci/example/kvstore"
	abci "github.com/cometbft/cometbft/abci/types"
)

// Every transaction kvload sends must be one the kvstore app accepts, or the
// benchmark measures refusals; and two must never be the same.
func TestTxAcceptedByKVStore(t *testing.T) {
	app := kvstore.NewInMemoryApplication()
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		tx, key := newTx()
		res, err := app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: tx, Type: abci.CheckTxType_New})
		if err != nil || res.Code != 0 {
			t.Fatalf("kvstore refused %q: %v %+v", tx, err, res)
		}
		if got := base64.StdEncoding.EncodeToString(tx); got != key {
			t.Fatalf("key %q is not the block form %q", key, got)
		}
		if seen[key] {
			t.Fatalf("tx %q twice", tx)
		}
		seen[key] = true
	}
}

// A block's transactions settle exactly the pending ones they hold.
func TestPendingCommitted(t *testing.T) {
	p := &pending{sent: map[string]time.Time{}}
	t0 := time.Now()
	_, a := newTx()
	_, b := newTx()
	_, c := newTx()
	p.add(a, t0)
	p.add(b, t0)
	p.add(c, t0)
	p.drop(c)
	p.committed([]string{a, "not ours"}, t0.Add(time.Second))
	if p.left() != 1 || len(p.final) != 1 || p.final[0] != time.Second {
		t.Fatalf("left %d, final %v", p.left(), p.final)
	}
	p.committed([]string{a, b}, t0.Add(2*time.Second))
	if p.left() != 0 || len(p.final) != 2 || p.final[1] != 2*time.Second {
		t.Fatalf("left %d, final %v", p.left(), p.final)
	}
}
