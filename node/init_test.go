package node

import (
	"testing"

	"github.com/credence-ledger/credence/consensus"
)

// TestInitHTTPAddress: init writes the gateway address it is given, the
// default when given none, and no gateway when asked for none (as
// `credenced init --http-address ""` does); the node then serves no HTTP.
func TestInitHTTPAddress(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		o    InitOptions
		want string
	}{
		{"default", InitOptions{}, "127.0.0.1:1317"},
		{"given", InitOptions{HTTPAddress: "127.0.0.1:21317"}, "127.0.0.1:21317"},
		{"none", InitOptions{NoHTTP: true, HTTPAddress: "127.0.0.1:21317"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			c.o.ChainID = "credence-test"
			c.o.Ports = consensus.Ports{P2P: "tcp://127.0.0.1:0", RPC: "tcp://127.0.0.1:0", Prometheus: "127.0.0.1:0"}
			if _, err := Init(home, c.o); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(home)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.HTTPAddress != c.want {
				t.Fatalf("http_address %q, want %q", cfg.HTTPAddress, c.want)
			}
		})
	}
}
