package node

import (
	"context"
	"net"
	"strings"
	"testing"
)

// TestStartRefusesPrometheusPortTaken: a node whose Prometheus listener
// cannot bind does not start (CometBFT only logs it and runs without
// metrics, which an operator learns when the dashboards go blank), and says
// which address.
func TestStartRefusesPrometheusPortTaken(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	taken, err := net.Listen("tcp", h.ov.Ports.Prometheus)
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	n, err := Start(context.Background(), h.dir, h.ov, testLogger(t))
	if err == nil {
		n.Stop()
		t.Fatal("the node started with its Prometheus address taken")
	}
	if !strings.Contains(err.Error(), h.ov.Ports.Prometheus) || !strings.Contains(err.Error(), "prometheus") {
		t.Fatalf("the error does not name the Prometheus address %s: %v", h.ov.Ports.Prometheus, err)
	}
	// Once free, the same home starts.
	taken.Close()
	h.start(t).Stop()
}
