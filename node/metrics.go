package node

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics join CometBFT's on its Prometheus listener (the default registry).
var (
	metricSubmitted = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "credence", Name: "hashes_queued_total", Help: "Hashes newly queued and synced to disk."})
	metricAnchored = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "credence", Name: "hashes_indexed_total", Help: "Anchored hashes indexed by this node (all issuers)."})
	metricBatches = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "credence", Name: "batches_sent_total", Help: "Batches cut and sent by this node."})
	metricQueueDepth = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "credence", Name: "queue_depth", Help: "Hashes queued and not yet in a batch."})
	metricIndexedHeight = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "credence", Name: "indexed_height", Help: "Last height indexed."})
	metricReceipts = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "credence", Name: "receipts_served_total", Help: "Receipts served."})
)
