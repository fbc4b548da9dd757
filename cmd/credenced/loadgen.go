package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// loadgenCmd drives a node at a fixed rate of fresh random hashes and
// measures how long a hash takes to be acknowledged (durable) and final
// (its receipt served). A sample of the receipts is verified against the
// genesis, as a relying party would, so that a benchmark cannot count a
// hash as final on a receipt that does not prove it. With --receipt-clients
// it also reads receipts of hashes already final while it anchors. It is a
// benchmark tool: its requests are bounded in count and time and go only to
// the node given.
func loadgenCmd() *cobra.Command {
	var addr, home, token, genesis, resultFile string
	var tokenFlags tokenSource
	var rate, per, clients, verifyEvery, verifyReadsEvery, receiptClients, receiptRate int
	var duration, receiptWait time.Duration
	c := &cobra.Command{
		Use:   "loadgen --node ADDR --home H [--rate HASHES/S] [--duration D]",
		Short: "Benchmark a node: submit random hashes at a rate, report throughput and submit→final latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rate <= 0 || per <= 0 || clients <= 0 || duration <= 0 {
				return errors.New("--rate, --per-request, --clients and --duration must be positive")
			}
			if verifyEvery < 0 || verifyReadsEvery < 0 || receiptClients < 0 || receiptRate < 0 || receiptWait < 0 {
				return errors.New("--verify-every, --verify-reads-every, --receipt-clients, --receipt-rate and --receipt-wait must not be negative")
			}
			var trust *proof.TrustRoot
			if verifyEvery > 0 || verifyReadsEvery > 0 {
				if genesis == "" {
					genesis = filepath.Join(home, "config", "genesis.json")
				}
				var err error
				if trust, err = trustFromFlag(genesis); err != nil {
					return err
				}
			}
			var err error
			if token, err = tokenFlags.resolve(home); err != nil {
				return err
			}
			cl, closeConn, err := dial(addr)
			if err != nil {
				return err
			}
			defer closeConn()
			// Readers get their own connection: one HTTP/2 connection's
			// flow control would otherwise tie their pace to the submitters'.
			rcl, closeReaders, err := dial(addr)
			if err != nil {
				return err
			}
			defer closeReaders()
			// Calls waiting for receipts get connections of their own: a
			// node serves max_streams_per_connection (64) calls at once on
			// one connection, and waits held there would queue the next
			// Submits behind them.
			waiters := make([]pb.CredenceClient, receiptWaitConns)
			for i := range waiters {
				wcl, closeWaiter, err := dial(addr)
				if err != nil {
					return err
				}
				defer closeWaiter()
				waiters[i] = wcl
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), duration+2*time.Minute)
			defer cancel()
			actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)

			var mu sync.Mutex
			var ackLat, finalLat []time.Duration
			var acked, failed atomic.Int64
			// Hashes whose receipt was served, for the readers to ask again.
			var final finalPool
			// Answers that said an acknowledged hash has no receipt (a lost
			// hash, or a wrong answer) and receipts that did not verify:
			// reported, never retried.
			var bad badReceipts
			var verified atomic.Int64
			var requests atomic.Int64
			var pollers sync.WaitGroup
			interval := time.Duration(float64(time.Second) * float64(per) * float64(clients) / float64(rate))
			stop := time.Now().Add(duration)
			var wg sync.WaitGroup
			for w := 0; w < clients; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					next := time.Now()
					for time.Now().Before(stop) {
						if d := time.Until(next); d > 0 {
							time.Sleep(d)
						}
						// The wait may have run past the end: no request after it.
						if !time.Now().Before(stop) {
							return
						}
						next = next.Add(interval)
						hs := make([]byte, 32*per)
						rand.Read(hs)
						t0 := time.Now()
						if _, err := cl.Submit(actx, &pb.SubmitRequest{Hashes: hs}); err != nil {
							failed.Add(1)
							continue
						}
						ack := time.Since(t0)
						acked.Add(int64(per))
						mu.Lock()
						ackLat = append(ackLat, ack)
						mu.Unlock()
						// The request's last hash stands for it: its batch is
						// cut no earlier than the others'.
						last := hs[len(hs)-32:]
						n := requests.Add(1)
						check := verifyEvery > 0 && n%int64(verifyEvery) == 0
						wcl := waiters[n%int64(len(waiters))]
						pollers.Add(1)
						go func() {
							defer pollers.Done()
							for ctx.Err() == nil {
								res, err := wcl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: last, WaitMs: waitMs(receiptWait)})
								if err == nil {
									mu.Lock()
									finalLat = append(finalLat, time.Since(t0))
									mu.Unlock()
									final.add(last)
									if check {
										if err := checkReceipt(res.Receipt, last, trust); err != nil {
											bad.add(err)
										} else {
											verified.Add(1)
										}
										// And one other hash of the request, at
										// random: another leaf, maybe another batch.
										if per > 1 {
											i := mrand.IntN(per - 1)
											other := hs[32*i : 32*i+32]
											if err := awaitVerified(ctx, wcl, other, trust, receiptWait); err != nil {
												bad.add(err)
											} else {
												verified.Add(1)
											}
										}
									}
									return
								}
								if c := status.Code(err); c != codes.Unavailable && c != codes.ResourceExhausted {
									bad.add(fmt.Errorf("receipt of acknowledged %s: %w", proof.FormatBinary(last), err))
									return
								}
								time.Sleep(receiptPoll)
							}
						}()
					}
				}()
			}
			var rs *readStats
			if receiptClients > 0 {
				rs = readReceipts(ctx, rcl, &final, trust, stop, receiptClients, receiptRate, verifyReadsEvery)
			}
			start := time.Now()
			wg.Wait()
			sent := time.Since(start)
			pollers.Wait()
			mu.Lock()
			defer mu.Unlock()
			out := os.Stdout
			r := &loadResult{
				Offered: rate, Duration: duration, Acked: acked.Load(), AckedPerS: float64(acked.Load()) / sent.Seconds(),
				Failed: failed.Load(), AckLat: ackLat, FinalLat: finalLat, Verified: verified.Load(), Bad: bad.n.Load(),
			}
			if rs != nil {
				rs.wait()
				r.Reads = rs
			}
			r.print(out)
			if resultFile != "" {
				f, err := os.Create(resultFile)
				if err != nil {
					return err
				}
				r.writeKV(f)
				if err := f.Close(); err != nil {
					return err
				}
			}
			if err := bad.err(); err != nil {
				return err
			}
			if rs != nil {
				return rs.bad.err()
			}
			return nil
		},
	}
	c.Flags().StringVar(&addr, "node", "127.0.0.1:9090", "node gRPC address")
	c.Flags().StringVar(&home, "home", defaultHome(), "home holding the issuer API token (and, unless --genesis, the genesis)")
	tokenFlags.register(c)
	c.Flags().IntVar(&rate, "rate", 10000, "hashes per second offered")
	c.Flags().IntVar(&per, "per-request", 1000, "hashes per Submit request")
	c.Flags().IntVar(&clients, "clients", 8, "concurrent clients")
	c.Flags().DurationVar(&duration, "duration", 20*time.Second, "how long to offer load")
	c.Flags().DurationVar(&receiptWait, "receipt-wait", 10*time.Second, "how long each GetReceipt for a hash on its way waits for it (wait_ms) before loadgen asks again; 0 asks every 50 ms")
	c.Flags().StringVar(&genesis, "genesis", "", "genesis.json that receipts are verified against (default HOME/config/genesis.json)")
	// A verification costs about 0.3 ms of CPU (docs/benchmarks.md): every
	// request's receipt is cheap beside its 1,000 hashes; every read is not.
	c.Flags().IntVar(&verifyEvery, "verify-every", 1, "for one request in N, verify the receipts of its last hash and of one other at random against the genesis; 0: none")
	c.Flags().IntVar(&verifyReadsEvery, "verify-reads-every", 100, "verify one receipt read in N against the genesis; 0: none")
	c.Flags().IntVar(&receiptClients, "receipt-clients", 0, "clients reading receipts of hashes already final, while the load runs")
	c.Flags().IntVar(&receiptRate, "receipt-rate", 0, "receipts per second the readers ask for in total; 0: as fast as they can")
	c.Flags().StringVar(&resultFile, "result", "", "also write the figures as KEY=VALUE lines to this file (for scripts)")
	return c
}

// receiptWaitConns is how many connections loadgen's receipt waits share:
// 64 calls at once on each, 1,024 in all, beyond the requests a point
// holds in flight (a second's worth at 100,000 hashes/s is 100).
const receiptWaitConns = 16

// receiptPoll is how long loadgen pauses before asking again for a
// receipt still on its way: after each ask with --receipt-wait 0, or
// after a wait that ran out.
const receiptPoll = 50 * time.Millisecond

// waitMs is a wait (--receipt-wait, receipt --wait) as GetReceipt's wait_ms.
func waitMs(d time.Duration) uint32 { return uint32(min(d.Milliseconds(), math.MaxUint32)) }

// awaitVerified waits for the receipt of an acknowledged hash
// (fetchReceipt) and checks it.
func awaitVerified(ctx context.Context, cl pb.CredenceClient, hash []byte, trust *proof.TrustRoot, wait time.Duration) error {
	r, err := fetchReceipt(ctx, cl, hash, wait)
	if err != nil {
		return fmt.Errorf("acknowledged %s: %w", proof.FormatBinary(hash), err)
	}
	return checkReceipt(r, hash, trust)
}

// checkReceipt is a relying party's check: the receipt verifies against the
// trust root and proves the hash that was submitted, not another.
func checkReceipt(r *proof.Receipt, hash []byte, trust *proof.TrustRoot) error {
	v, err := proof.Verify(r, trust)
	if err != nil {
		return fmt.Errorf("receipt of %s does not verify: %w", proof.FormatBinary(hash), err)
	}
	if !bytes.Equal(v.CredentialHash, hash) {
		return fmt.Errorf("receipt asked for %s proves %s", proof.FormatBinary(hash), proof.FormatBinary(v.CredentialHash))
	}
	return nil
}

type badReceipts struct {
	n     atomic.Int64
	first atomic.Pointer[error]
}

func (b *badReceipts) add(err error) {
	b.n.Add(1)
	b.first.CompareAndSwap(nil, &err)
}

func (b *badReceipts) err() error {
	if n := b.n.Load(); n > 0 {
		return fmt.Errorf("%d receipts missing or not verifying; the first: %v", n, *b.first.Load())
	}
	return nil
}

// finalPool holds the hashes whose receipts were served: the set readers
// pick from, so that every read is of a hash the node must know.
type finalPool struct {
	mu     sync.Mutex
	hashes [][]byte
}

func (p *finalPool) add(h []byte) {
	p.mu.Lock()
	p.hashes = append(p.hashes, h)
	p.mu.Unlock()
}

func (p *finalPool) pick() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.hashes) == 0 {
		return nil
	}
	i, _ := rand.Int(rand.Reader, big.NewInt(int64(len(p.hashes))))
	return p.hashes[i.Int64()]
}

type readStats struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	lat      []time.Duration
	start    time.Time
	elapsed  time.Duration
	refused  atomic.Int64
	verified atomic.Int64
	bad      badReceipts
}

func (s *readStats) wait() {
	s.wg.Wait()
}

// readReceipts runs n readers until stop, each asking for the receipt of a
// random hash already final, at rate receipts/s in total (0: no pacing).
// Readers start once the first receipt has been served.
func readReceipts(ctx context.Context, cl pb.CredenceClient, pool *finalPool, trust *proof.TrustRoot, stop time.Time, n, rate, verifyEvery int) *readStats {
	s := &readStats{}
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(n) / float64(rate))
	}
	var count atomic.Int64
	var begin sync.Once
	for w := 0; w < n; w++ {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			var lat []time.Duration
			defer func() {
				s.mu.Lock()
				s.lat = append(s.lat, lat...)
				s.mu.Unlock()
			}()
			for pool.pick() == nil {
				if !time.Now().Before(stop) || ctx.Err() != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			begin.Do(func() { s.start = time.Now() })
			next := time.Now()
			for time.Now().Before(stop) && ctx.Err() == nil {
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(interval)
					if !time.Now().Before(stop) {
						break
					}
				}
				h := pool.pick()
				t0 := time.Now()
				res, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: h})
				d := time.Since(t0)
				if err != nil {
					if status.Code(err) == codes.ResourceExhausted || status.Code(err) == codes.Unavailable {
						s.refused.Add(1)
						continue
					}
					s.bad.add(fmt.Errorf("receipt of final %s: %w", proof.FormatBinary(h), err))
					continue
				}
				lat = append(lat, d)
				if verifyEvery > 0 && count.Add(1)%int64(verifyEvery) == 0 {
					if err := checkReceipt(res.Receipt, h, trust); err != nil {
						s.bad.add(err)
					} else {
						s.verified.Add(1)
					}
				}
			}
			s.mu.Lock()
			if e := time.Since(s.start); e > s.elapsed {
				s.elapsed = e
			}
			s.mu.Unlock()
		}()
	}
	return s
}

// pct is the p-quantile of ds (sorted in place), 0 for none.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[min(len(ds)-1, int(p*float64(len(ds))))]
}

type loadResult struct {
	Offered          int
	Duration         time.Duration
	Acked            int64
	AckedPerS        float64
	Failed           int64
	AckLat, FinalLat []time.Duration
	Verified, Bad    int64
	Reads            *readStats
}

func (r *loadResult) print(w io.Writer) {
	fmt.Fprintf(w, "offered %d hashes/s for %s: acknowledged %d hashes (%.0f/s), %d requests failed\n",
		r.Offered, r.Duration, r.Acked, r.AckedPerS, r.Failed)
	fmt.Fprintf(w, "submit→ack    p50 %v  p99 %v  max %v  (%d requests)\n",
		pct(r.AckLat, 0.5), pct(r.AckLat, 0.99), pct(r.AckLat, 1), len(r.AckLat))
	fmt.Fprintf(w, "submit→final  p50 %v  p99 %v  max %v  (%d of %d requests' receipts)\n",
		pct(r.FinalLat, 0.5), pct(r.FinalLat, 0.99), pct(r.FinalLat, 1), len(r.FinalLat), len(r.AckLat))
	fmt.Fprintf(w, "receipts verified against the genesis (two hashes per request checked): %d, missing or not verifying: %d\n", r.Verified, r.Bad)
	if s := r.Reads; s != nil {
		fmt.Fprintf(w, "receipt reads %d (%.0f/s)  p50 %v  p99 %v  max %v  refused %d  verified %d  bad %d\n",
			len(s.lat), s.perSecond(), pct(s.lat, 0.5), pct(s.lat, 0.99), pct(s.lat, 1), s.refused.Load(), s.verified.Load(), s.bad.n.Load())
	}
}

func (s *readStats) perSecond() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(len(s.lat)) / s.elapsed.Seconds()
}

// writeKV writes the figures for scripts: milliseconds, hashes, counts.
func (r *loadResult) writeKV(w io.Writer) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintf(w, "offered=%d\nacked=%d\nacked_per_s=%.0f\nfailed_requests=%d\n", r.Offered, r.Acked, r.AckedPerS, r.Failed)
	fmt.Fprintf(w, "ack_p50_ms=%s\nack_p99_ms=%s\nfinal_p50_ms=%s\nfinal_p99_ms=%s\n",
		ms(pct(r.AckLat, 0.5)), ms(pct(r.AckLat, 0.99)), ms(pct(r.FinalLat, 0.5)), ms(pct(r.FinalLat, 0.99)))
	fmt.Fprintf(w, "final_requests=%d\nack_requests=%d\nverified=%d\nbad=%d\n", len(r.FinalLat), len(r.AckLat), r.Verified, r.Bad)
	if s := r.Reads; s != nil {
		fmt.Fprintf(w, "reads=%d\nreads_per_s=%.0f\nread_p50_ms=%s\nread_p99_ms=%s\nreads_refused=%d\nreads_verified=%d\nreads_bad=%d\n",
			len(s.lat), s.perSecond(), ms(pct(s.lat, 0.5)), ms(pct(s.lat, 0.99)), s.refused.Load(), s.verified.Load(), s.bad.n.Load())
	}
}
