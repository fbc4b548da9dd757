package node

import (
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	dto "github.com/prometheus/client_model/go"
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
	metricRetainHeight = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "credence", Name: "retain_height", Help: "Height below which CometBFT may prune blocks (0: keep all)."})
	metricReceipts = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "credence", Name: "receipts_served_total", Help: "Receipts served."})
)

// Latency and size histograms, the figures an operator graphs
// (docs/grafana-dashboard.json).
var (
	metricSubmitAck = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "credence", Name: "submit_ack_seconds",
		Help:    "Submit to acknowledgement (hashes durable on disk), per request or stream message.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)})
	metricSubmitFinal = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "credence", Name: "submit_final_seconds",
		Help:    "Acknowledgement to final (batch committed and indexed) of the longest-waiting hash of each batch this node sent.",
		Buckets: prometheus.ExponentialBuckets(0.25, 2, 12)})
	metricBatchSize = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "credence", Name: "batch_hashes",
		Help:    "Hashes per batch cut by this node.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 9)})
	metricBatchBuild = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "credence", Name: "batch_build_seconds",
		Help:    "Time to cut a batch: Merkle root, signed transaction, queue records synced.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)})
	metricReceiptLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "credence", Name: "receipt_seconds",
		Help:    "Time to build and serve a receipt (GetReceipt, also under GetStatus and the HTTP receipt files).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16)})
)

// grpcMetrics are the API's calls by method and code (grpc_server_*).
var grpcMetrics = func() *grpcprom.ServerMetrics {
	m := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets(prometheus.ExponentialBuckets(0.0005, 2, 16))))
	prometheus.MustRegister(m)
	return m
}()

// Progress is a running node's state in brief, for a person watching it.
type Progress struct {
	Height int64
	// Queued hashes are acknowledged and not yet in a batch.
	Queued uint64
	// Anchored hashes and Batches sent, since the process started.
	Anchored, Batches uint64
}

// Progress reports the node's height, queue and anchored totals.
func (n *Node) Progress() Progress {
	return Progress{
		Height:   n.app.Height(),
		Queued:   n.pipe.queueDepth(),
		Anchored: uint64(readCounter(metricAnchored)),
		Batches:  uint64(readCounter(metricBatches)),
	}
}

func readCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
