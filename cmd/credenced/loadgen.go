package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// loadgenCmd drives a node at a fixed rate of fresh random hashes and
// measures how long a hash takes to be acknowledged (durable) and final
// (its receipt served). It is a benchmark tool: its requests are bounded in
// count and time and go only to the node given.
func loadgenCmd() *cobra.Command {
	var addr, home, token string
	var tokenFlags tokenSource
	var rate, per, clients int
	var duration time.Duration
	c := &cobra.Command{
		Use:   "loadgen --node ADDR --home H [--rate HASHES/S] [--duration D]",
		Short: "Benchmark a node: submit random hashes at a rate, report throughput and submit→final latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rate <= 0 || per <= 0 || clients <= 0 || duration <= 0 {
				return errors.New("--rate, --per-request, --clients and --duration must be positive")
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
			ctx, cancel := context.WithTimeout(cmd.Context(), duration+2*time.Minute)
			defer cancel()
			actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)

			var mu sync.Mutex
			var ackLat, finalLat []time.Duration
			var acked, failed, receiptErrs atomic.Int64
			// The first answer that said an acknowledged hash has no receipt
			// (a lost hash, or a wrong answer): reported, never retried.
			var firstReceiptErr atomic.Pointer[error]
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
						pollers.Add(1)
						go func() {
							defer pollers.Done()
							for ctx.Err() == nil {
								_, err := cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: last})
								if err == nil {
									mu.Lock()
									finalLat = append(finalLat, time.Since(t0))
									mu.Unlock()
									return
								}
								if c := status.Code(err); c != codes.Unavailable && c != codes.ResourceExhausted {
									receiptErrs.Add(1)
									firstReceiptErr.CompareAndSwap(nil, &err)
									return
								}
								time.Sleep(50 * time.Millisecond)
							}
						}()
					}
				}()
			}
			start := time.Now()
			wg.Wait()
			sent := time.Since(start)
			pollers.Wait()
			pct := func(ds []time.Duration, p float64) time.Duration {
				if len(ds) == 0 {
					return 0
				}
				sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
				return ds[min(len(ds)-1, int(p*float64(len(ds))))]
			}
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(os.Stdout, "offered %d hashes/s for %s: acknowledged %d hashes (%.0f/s), %d requests failed\n",
				rate, duration, acked.Load(), float64(acked.Load())/sent.Seconds(), failed.Load())
			fmt.Fprintf(os.Stdout, "submit→ack    p50 %v  p99 %v  max %v  (%d requests)\n",
				pct(ackLat, 0.5), pct(ackLat, 0.99), pct(ackLat, 1), len(ackLat))
			fmt.Fprintf(os.Stdout, "submit→final  p50 %v  p99 %v  max %v  (%d of %d requests' receipts)\n",
				pct(finalLat, 0.5), pct(finalLat, 0.99), pct(finalLat, 1), len(finalLat), len(ackLat))
			if n := receiptErrs.Load(); n > 0 {
				return fmt.Errorf("%d acknowledged requests got no receipt; the first answer: %v", n, *firstReceiptErr.Load())
			}
			return nil
		},
	}
	c.Flags().StringVar(&addr, "node", "127.0.0.1:9090", "node gRPC address")
	c.Flags().StringVar(&home, "home", defaultHome(), "home holding the issuer API token")
	tokenFlags.register(c)
	c.Flags().IntVar(&rate, "rate", 10000, "hashes per second offered")
	c.Flags().IntVar(&per, "per-request", 1000, "hashes per Submit request")
	c.Flags().IntVar(&clients, "clients", 8, "concurrent clients")
	c.Flags().DurationVar(&duration, "duration", 20*time.Second, "how long to offer load")
	return c
}
