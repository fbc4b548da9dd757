// Command kvload offers plain CometBFT's kvstore example app the load that
// `credenced loadgen` offers Credence, one hash per transaction, so that
// scripts/benchnet.sh can set the two side by side.
//
// Each transaction is "KEY=1" with KEY a fresh random 32-byte hash in
// unpadded base64url (43 bytes; raw bytes could hold the '=' or ':' that
// kvstore's format reserves). It is sent with broadcast_tx_sync: the answer
// comes after CheckTx, which is the acknowledgement (the counterpart of
// Credence's durable Submit). A transaction is final when a block holding it
// is served by the node's /block: the poller fetches every height in turn
// and matches transactions by their bytes, which needs no tx indexer and
// costs one request per block, not one per transaction.
//
// It lives beside the scripts rather than in credenced because it speaks
// only CometBFT's JSON-RPC, which is no part of Credence's client.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	rpc := flag.String("rpc", "http://127.0.0.1:26657", "the node's CometBFT RPC")
	rate := flag.Int("rate", 1000, "transactions (hashes) per second offered")
	clients := flag.Int("clients", 32, "concurrent senders")
	per := flag.Int("per-request", 100, "transactions per HTTP request (a JSON-RPC batch)")
	duration := flag.Duration("duration", 20*time.Second, "how long to offer load")
	drain := flag.Duration("drain", time.Minute, "how long to wait after the load for acknowledged transactions to be committed")
	resultFile := flag.String("result", "", "also write the figures as KEY=VALUE lines to this file")
	flag.Parse()
	if *rate <= 0 || *clients <= 0 || *per <= 0 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "kvload: --rate, --clients, --per-request and --duration must be positive")
		os.Exit(2)
	}
	r, err := run(context.Background(), *rpc, *rate, *clients, *per, *duration, *drain)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvload:", err)
		os.Exit(1)
	}
	r.print(os.Stdout)
	if *resultFile != "" {
		var b bytes.Buffer
		r.writeKV(&b)
		if err := os.WriteFile(*resultFile, b.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "kvload:", err)
			os.Exit(1)
		}
	}
	if r.lost > 0 {
		fmt.Fprintf(os.Stderr, "kvload: %d acknowledged transactions not committed within %s\n", r.lost, *drain)
		os.Exit(1)
	}
}

// newTx is a fresh kvstore transaction and its form in a block's JSON.
func newTx() (tx []byte, key string) {
	var h [32]byte
	rand.Read(h[:])
	tx = append(base64.RawURLEncoding.AppendEncode(nil, h[:]), "=1"...)
	return tx, base64.StdEncoding.EncodeToString(tx)
}

type result struct {
	offered               int
	acked, refused, fails int64
	ackedPerS             float64
	lost                  int
	ackLat, finalLat      []time.Duration
	duration              time.Duration
}

type client struct {
	rpc  string
	http *http.Client
}

func (c *client) call(ctx context.Context, method string, params any, out any) error {
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.rpc, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var env struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
			Data    string `json:"data"`
		} `json:"error"`
	}
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	io.Copy(io.Discard, res.Body)
	if env.Error != nil {
		return fmt.Errorf("%s: %s %s", method, env.Error.Message, env.Error.Data)
	}
	return json.Unmarshal(env.Result, out)
}

// broadcast sends txs with broadcast_tx_sync in one JSON-RPC batch (the
// server answers each in turn) and returns, per tx, nil or why it was not
// acknowledged.
func (c *client) broadcast(ctx context.Context, txs [][]byte) ([]error, error) {
	reqs := make([]map[string]any, len(txs))
	for i, tx := range txs {
		reqs[i] = map[string]any{"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_sync", "params": map[string]any{"tx": tx}}
	}
	body, err := json.Marshal(reqs)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.rpc, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var answers []struct {
		ID     int `json:"id"`
		Result *struct {
			Code int    `json:"code"`
			Log  string `json:"log"`
		} `json:"result"`
		Error *struct {
			Message string `json:"message"`
			Data    string `json:"data"`
		} `json:"error"`
	}
	if err := json.NewDecoder(res.Body).Decode(&answers); err != nil {
		return nil, fmt.Errorf("broadcast_tx_sync: %w", err)
	}
	errs := make([]error, len(txs))
	for i := range errs {
		errs[i] = errors.New("no answer")
	}
	for _, a := range answers {
		if a.ID < 0 || a.ID >= len(txs) {
			continue
		}
		switch {
		case a.Error != nil:
			errs[a.ID] = fmt.Errorf("%s %s", a.Error.Message, a.Error.Data)
		case a.Result == nil:
			errs[a.ID] = errors.New("empty answer")
		case a.Result.Code != 0:
			errs[a.ID] = fmt.Errorf("CheckTx code %d: %s", a.Result.Code, a.Result.Log)
		default:
			errs[a.ID] = nil
		}
	}
	return errs, nil
}

// pending maps a transaction (as a block's JSON carries it) to its send time.
type pending struct {
	mu    sync.Mutex
	sent  map[string]time.Time
	final []time.Duration
}

func (p *pending) add(key string, t time.Time) {
	p.mu.Lock()
	p.sent[key] = t
	p.mu.Unlock()
}

func (p *pending) drop(key string) {
	p.mu.Lock()
	delete(p.sent, key)
	p.mu.Unlock()
}

// committed records the transactions of a block seen at now.
func (p *pending) committed(txs []string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range txs {
		if t, ok := p.sent[k]; ok {
			p.final = append(p.final, now.Sub(t))
			delete(p.sent, k)
		}
	}
}

func (p *pending) left() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

type blockResult struct {
	Block struct {
		Data struct {
			Txs []string `json:"txs"`
		} `json:"data"`
	} `json:"block"`
}

func run(ctx context.Context, rpc string, rate, clients, per int, duration, drain time.Duration) (*result, error) {
	c := &client{rpc: rpc, http: &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConns: clients + 4, MaxIdleConnsPerHost: clients + 4},
	}}
	var st struct {
		SyncInfo struct {
			Height string `json:"latest_block_height"`
		} `json:"sync_info"`
	}
	if err := c.call(ctx, "status", map[string]any{}, &st); err != nil {
		return nil, err
	}
	height, err := strconv.ParseInt(st.SyncInfo.Height, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("status: height %q", st.SyncInfo.Height)
	}
	p := &pending{sent: make(map[string]time.Time)}
	r := &result{offered: rate, duration: duration}
	var mu sync.Mutex
	var acked, refused, fails atomic.Int64
	var firstErr atomic.Pointer[error]

	// The poller: every height after the one at the start, in order.
	pctx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for h := height + 1; pctx.Err() == nil; {
			var b blockResult
			if err := c.call(pctx, "block", map[string]any{"height": strconv.FormatInt(h, 10)}, &b); err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			p.committed(b.Block.Data.Txs, time.Now())
			h++
		}
	}()

	interval := time.Duration(float64(time.Second) * float64(per) * float64(clients) / float64(rate))
	stop := time.Now().Add(duration)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			defer func() {
				mu.Lock()
				r.ackLat = append(r.ackLat, lat...)
				mu.Unlock()
			}()
			next := time.Now()
			for time.Now().Before(stop) {
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				// The wait may have run past the end: no send after it.
				if !time.Now().Before(stop) {
					return
				}
				next = next.Add(interval)
				txs := make([][]byte, per)
				keys := make([]string, per)
				t0 := time.Now()
				for i := range txs {
					txs[i], keys[i] = newTx()
					p.add(keys[i], t0)
				}
				errs, err := c.broadcast(ctx, txs)
				if err != nil {
					fails.Add(int64(per))
					firstErr.CompareAndSwap(nil, &err)
					for _, k := range keys {
						p.drop(k)
					}
					continue
				}
				d := time.Since(t0)
				for i, err := range errs {
					if err != nil {
						refused.Add(1)
						firstErr.CompareAndSwap(nil, &err)
						p.drop(keys[i])
						continue
					}
					acked.Add(1)
				}
				lat = append(lat, d)
			}
		}()
	}
	wg.Wait()
	sent := time.Since(start)
	deadline := time.Now().Add(drain)
	for p.left() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stopPoll()
	<-polled
	p.mu.Lock()
	r.finalLat = p.final
	r.lost = len(p.sent)
	p.mu.Unlock()
	r.acked, r.refused, r.fails = acked.Load(), refused.Load(), fails.Load()
	r.ackedPerS = float64(r.acked) / sent.Seconds()
	if r.acked == 0 {
		if e := firstErr.Load(); e != nil {
			return nil, fmt.Errorf("no transaction acknowledged; the first error: %w", *e)
		}
		return nil, errors.New("no transaction acknowledged")
	}
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "kvload: first refused or failed broadcast:", *e)
	}
	return r, nil
}

// pct is the p-quantile of ds (sorted in place), 0 for none.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[min(len(ds)-1, int(p*float64(len(ds))))]
}

func (r *result) print(w io.Writer) {
	fmt.Fprintf(w, "offered %d txs/s for %s: acknowledged %d (%.0f/s), %d refused by CheckTx, %d failed\n",
		r.offered, r.duration, r.acked, r.ackedPerS, r.refused, r.fails)
	fmt.Fprintf(w, "send→ack (CheckTx, per request)  p50 %v  p99 %v  max %v\n", pct(r.ackLat, 0.5), pct(r.ackLat, 0.99), pct(r.ackLat, 1))
	fmt.Fprintf(w, "send→in a block     p50 %v  p99 %v  max %v  (%d of %d acknowledged; %d not committed)\n",
		pct(r.finalLat, 0.5), pct(r.finalLat, 0.99), pct(r.finalLat, 1), len(r.finalLat), r.acked, r.lost)
}

func (r *result) writeKV(w io.Writer) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintf(w, "offered=%d\nacked=%d\nacked_per_s=%.0f\nrefused=%d\nfailed_requests=%d\nlost=%d\n",
		r.offered, r.acked, r.ackedPerS, r.refused, r.fails, r.lost)
	fmt.Fprintf(w, "ack_p50_ms=%s\nack_p99_ms=%s\nfinal_p50_ms=%s\nfinal_p99_ms=%s\n",
		ms(pct(r.ackLat, 0.5)), ms(pct(r.ackLat, 0.99)), ms(pct(r.finalLat, 0.5)), ms(pct(r.finalLat, 0.99)))
}
