package node

import (
	"fmt"
	"net"

	cmtcfg "github.com/cometbft/cometbft/config"
)

// checkPrometheusListen fails when the Prometheus listener CometBFT is about
// to open cannot bind: CometBFT opens it in a goroutine and only logs the
// failure, and a node without metrics is found out when its dashboards go
// blank. The address is tried just before CometBFT starts; the port could
// still be taken in between, but a clash with a running process, the usual
// case (two nodes with one config), is refused.
func checkPrometheusListen(c *cmtcfg.Config) error {
	if !c.Instrumentation.IsPrometheusEnabled() {
		return nil
	}
	addr := c.Instrumentation.PrometheusListenAddr
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("prometheus_listen_addr %s (config.toml [instrumentation]): %w", addr, err)
	}
	return lis.Close()
}
