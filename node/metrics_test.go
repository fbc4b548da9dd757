package node

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// TestMetricsAfterSubmit: a node process, once a hash is submitted and its
// receipt fetched over gRPC and HTTP, shows on its Prometheus endpoint the
// latency histograms and the gRPC and HTTP calls by method and code. The
// node runs as its own process: in one process only the first node gets
// the endpoint.
func TestMetricsAfterSubmit(t *testing.T) {
	// Not parallel: it starts child processes. A child holds a copy of
	// every descriptor open at its fork until it execs, badger's directory
	// lock among them, so a parallel test that closed and reopened its
	// database in that moment would find it locked. Serial tests finish
	// before parallel ones start.
	h := newTestHome(t)
	logPath := filepath.Join(t.TempDir(), "node.log")
	p := startProcess(t, credencedBinary(t), h, logPath)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := dialTest(t, h.ov.GRPCAddress)
	waitServing(ctx, t, cl, p, logPath)

	hash := hashOf("metrics")
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hash}); err != nil {
		t.Fatal(err)
	}
	waitReceipt(ctx, t, cl, hash)
	res, err := http.Get("http://" + h.ov.HTTPAddress + "/v1/node")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	// The indexer records the batch's latency as it indexes it, which the
	// receipt does not wait for.
	var fams map[string]*dto.MetricFamily
	for {
		fams = scrape(t, "http://"+h.ov.Ports.Prometheus+"/metrics")
		if sampleCount(fams["credence_submit_final_seconds"], nil) > 0 || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, name := range []string{"credence_submit_ack_seconds", "credence_submit_final_seconds",
		"credence_batch_hashes", "credence_batch_build_seconds", "credence_receipt_seconds"} {
		if sampleCount(fams[name], nil) == 0 {
			t.Errorf("%s has no observation", name)
		}
	}
	if got := counterValue(fams["grpc_server_handled_total"], map[string]string{"grpc_method": "Submit", "grpc_code": "OK"}); got != 1 {
		t.Errorf("grpc_server_handled_total{Submit,OK} = %v, want 1", got)
	}
	if sampleCount(fams["grpc_server_handling_seconds"], map[string]string{"grpc_method": "GetReceipt"}) == 0 {
		t.Error("no GetReceipt in grpc_server_handling_seconds")
	}
	// Every series the dashboard graphs exists.
	dash, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`\b(?:credence|grpc_server|cometbft)_[a-z_]+`).FindAllString(string(dash), -1) {
		if fams[strings.TrimSuffix(name, "_bucket")] == nil {
			t.Errorf("the dashboard graphs %s, which the node does not export", name)
		}
	}
	if got := counterValue(fams["credence_http_requests_total"], map[string]string{"route": "/v1/node", "code": "200", "method": "get"}); got != 1 {
		t.Errorf("credence_http_requests_total{/v1/node,200} = %v, want 1 (%v)", got, fams["credence_http_requests_total"])
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			found++
		}
	}
	return found == len(want)
}

func sampleCount(f *dto.MetricFamily, labels map[string]string) uint64 {
	var n uint64
	for _, m := range f.GetMetric() {
		if hasLabels(m, labels) {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return n
}

func counterValue(f *dto.MetricFamily, labels map[string]string) float64 {
	var v float64
	for _, m := range f.GetMetric() {
		if hasLabels(m, labels) {
			v += m.GetCounter().GetValue()
		}
	}
	return v
}
