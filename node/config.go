package node

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/credence-ledger/credence/consensus"
	"github.com/credence-ledger/credence/proof"
)

// config is the node's app.toml: what CometBFT's config.toml does not hold.
type config struct {
	// GRPCAddress is the API listener. Default 127.0.0.1:9090. A
	// non-loopback address requires TLS: tokens must not cross a network in
	// the clear.
	GRPCAddress string `toml:"grpc_address"`
	// TLSCertFile and TLSKeyFile (PEM; relative to the config directory
	// unless absolute) turn on TLS for the API. Default: none (plaintext,
	// loopback only).
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// PlaintextAPIBeyondLoopback lets the API listen beyond loopback
	// without TLS, for a private network the operator controls (the docker
	// testnet sets it). Default false.
	PlaintextAPIBeyondLoopback bool `toml:"plaintext_api_beyond_loopback"`
	// HTTPAddress is the HTTP/JSON gateway's listener, under the same rule
	// as grpc_address (TLS with the same files beyond loopback). Default
	// 127.0.0.1:1317; empty turns the gateway off.
	HTTPAddress string `toml:"http_address"`
	// HTTPCORSOrigins are the origins whose pages may read the gateway
	// (Access-Control-Allow-Origin); "*" is any. Only reads are shared:
	// a write never passes a cross-origin preflight. Default ["*"], so that
	// any site's verifier page can check a credential.
	HTTPCORSOrigins []string `toml:"http_cors_origins"`
	// BatchInterval is how often the queue is cut into batches. Default 250ms.
	BatchInterval duration `toml:"batch_interval"`
	// BatchMaxLeaves cuts a batch early once an issuer has this many hashes
	// queued. Default 65536, under the chain's max_batch_hashes.
	BatchMaxLeaves int `toml:"batch_max_leaves"`
	// RebroadcastAfter resends a batch not yet final after this long.
	// Default 15s.
	RebroadcastAfter duration `toml:"rebroadcast_after"`
	// IndexRetryMin and IndexRetryMax bound the wait before a block whose
	// index write failed is written again: it doubles from the first to
	// the second. Meanwhile Submit is refused (Unavailable) and health is
	// NOT_SERVING. Default 100ms and 10s.
	IndexRetryMin duration `toml:"index_retry_min"`
	IndexRetryMax duration `toml:"index_retry_max"`
	// QueueSegmentMB is the size at which the queue log (data/queue)
	// starts a new segment. A segment is deleted once every hash in it is
	// in a batch, so smaller segments give back disk sooner under steady
	// load, and a restart replays less. Default 16.
	QueueSegmentMB int `toml:"queue_segment_mb"`
	// SnapshotInterval takes a state-sync snapshot (state and receipt
	// index) every this many blocks; 0 turns snapshots off. Default 1000.
	SnapshotInterval int64 `toml:"snapshot_interval"`
	// SnapshotKeepRecent is how many snapshots are kept. Default 2.
	SnapshotKeepRecent int `toml:"snapshot_keep_recent"`
	// RetainBlocks lets CometBFT prune its blocks but the newest this many
	// (and any the index or a snapshot's joiners still need); receipts
	// read what they need of blocks from the index. 0 keeps every block.
	// Default 100000: the leaves are then kept once, in the leaf store,
	// with the block store holding a window of blocks (about 7 hours at
	// the 250 ms cadence under load) for peers that catch up by block sync.
	RetainBlocks int64 `toml:"retain_blocks"`
	// BlockStoreGCInterval is how often the block store's value log is
	// garbage-collected: the parts of the blocks retain_blocks prunes are
	// in it, and only this frees their space. 0 turns it off. Default 1m
	// (consensus.DefaultBlockStoreGCInterval).
	BlockStoreGCInterval duration `toml:"blockstore_gc_interval"`
	// ReceiptCacheMB bounds the memory of batch trees kept for receipts:
	// half for whole trees of the newest batches asked for (a full
	// batch's is 4 MiB, 64 bytes a leaf), half for trees of older ones
	// without their bottom four levels (4 bytes a leaf: a receipt then
	// reads 16 leaves from the leaf store). Default 32.
	ReceiptCacheMB int `toml:"receipt_cache_mb"`
	// LeavesCheckedBatches is how many batches, checked whole against
	// their checksum once, a duplicate check then confirms with one 32-byte
	// read of the leaf store (leafcheck.go); 0 checks the whole batch at
	// every confirmation. Default 65536 (about 3 MiB).
	LeavesCheckedBatches int `toml:"leaves_checked_batches"`
	// MaxConnections bounds the API's open TCP connections; further
	// connections wait in the kernel's backlog. Default 512.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerSource bounds the connections one source (remote IP;
	// an IPv6 /64) may hold on each listener, so that one source cannot take
	// every max_connections slot; more from it are closed at once. Local
	// clients all share 127.0.0.1, so the default leaves them a quarter:
	// 128.
	MaxConnectionsPerSource int `toml:"max_connections_per_source"`
	// MaxConnectionAge asks a connection open this long to reconnect
	// (HTTP/2 GOAWAY), so that a connection kept busy by a silent stream
	// does not hold its slot forever; its calls get MaxConnectionAgeGrace
	// to finish. Default 1h, grace 5m.
	MaxConnectionAge      duration `toml:"max_connection_age"`
	MaxConnectionAgeGrace duration `toml:"max_connection_age_grace"`
	// MaxHTTPBodyBytes bounds an HTTP request's body; a larger one is
	// answered 413 before it is read. Default 8 MiB, the gRPC request
	// bound: a full Submit (100,000 hashes) is 4.3 MB of JSON.
	MaxHTTPBodyBytes int64 `toml:"max_http_body_bytes"`
	// MaxStreamsPerConnection bounds concurrent calls on one connection
	// (HTTP/2 max concurrent streams). Default 64.
	MaxStreamsPerConnection uint32 `toml:"max_streams_per_connection"`
	// MaxOpenStreams bounds the long-lived streaming calls (SubmitStream,
	// health Watch, reflection) open on the whole node; more are refused
	// with ResourceExhausted. Default 1024.
	MaxOpenStreams int `toml:"max_open_streams"`
	// MaxStreamsPerSource bounds the long-lived streams one source may hold
	// open, so that one source cannot take every max_open_streams slot.
	// Default 256.
	MaxStreamsPerSource int `toml:"max_streams_per_source"`
	// ConnectionRate is the calls (and stream messages) per second one
	// connection may make, with bursts of twice that; more are refused with
	// ResourceExhausted. Default 20000, so one connection cannot take the
	// whole node (which serves about 30,000 receipts a second) from others.
	ConnectionRate int `toml:"connection_rate"`
	// TokenRate is the writes per second one issuer's token may make over
	// all its connections, with bursts of twice that. Default 5000.
	TokenRate int `toml:"token_rate"`
	// HandshakeTimeout closes a connection that has not completed its
	// handshake (TLS and HTTP/2 preface) within it. Default 10s.
	HandshakeTimeout duration `toml:"handshake_timeout"`
	// IdleTimeout closes a connection with no call for this long.
	// Default 5m.
	IdleTimeout duration `toml:"idle_timeout"`
	// KeepaliveMinInterval is the shortest keepalive ping interval a client
	// may use; a client pinging more often is disconnected. Default 30s.
	KeepaliveMinInterval duration `toml:"keepalive_min_interval"`
	// MaxKnownListed bounds how many already-known hashes one SubmitStream
	// answer lists; the rest are counted in known_not_listed. Default
	// 100000 (one full Submit request).
	MaxKnownListed int `toml:"max_known_listed"`
	// StatusListCacheMB bounds the memory of the rendered (and verified)
	// W3C status list documents kept per (issuer, list, height), so
	// that readers of one list at one height pay for one render: an
	// 8M-entry list takes about 100 ms of CPU to verify. Default 64.
	StatusListCacheMB int `toml:"status_list_cache_mb"`
	// BroadcastTimeout bounds how long Broadcast waits for its transaction
	// to be committed before answering DeadlineExceeded (the transaction
	// may still commit). Default 30s.
	BroadcastTimeout duration `toml:"broadcast_timeout"`
	// MaxBroadcastWaits bounds the Broadcast calls waiting for their
	// transaction to commit at once; more are refused with
	// ResourceExhausted. Default 1024.
	MaxBroadcastWaits int `toml:"max_broadcast_waits"`
	// ReceiptWaitMax bounds how long a GetReceipt asking to wait (wait_ms)
	// for a hash queued or in flight at this node waits. Default 60s.
	ReceiptWaitMax duration `toml:"receipt_wait_max"`
	// MaxReceiptWaits bounds the GetReceipt calls waiting at once; more
	// are answered at once, as without wait_ms. Default 4096.
	MaxReceiptWaits int `toml:"max_receipt_waits"`
	// Memory bounds each store's memory (memory.go).
	Memory memoryConfig `toml:"memory"`
	// Issuers the node anchors for.
	Issuers []issuerConfig `toml:"issuer"`
}

// issuerConfig is one issuer whose key this node holds.
type issuerConfig struct {
	ID string `toml:"id"`
	// KeyFile holds the issuer's ed25519 key (mode 0600), relative to the
	// home's config directory unless absolute.
	KeyFile string `toml:"key_file"`
	// TokenSHA256 is the hex SHA-256 of the issuer's API token; the token
	// itself is never stored in the config.
	TokenSHA256 string `toml:"token_sha256"`
}

// duration reads "1s"-style durations from TOML.
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	d.Duration = v
	return err
}

func (d duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// defaultConfig is app.toml's defaults.
// defaultRetainBlocks is retain_blocks' default: CometBFT's default
// evidence age in blocks (evidence.max_age_num_blocks), as long a window
// as CometBFT keeps the headers of pruned blocks for anyway.
const defaultRetainBlocks = 100_000

func defaultConfig() *config {
	return &config{
		GRPCAddress:        "127.0.0.1:9090",
		HTTPAddress:        "127.0.0.1:1317",
		HTTPCORSOrigins:    []string{"*"},
		BatchInterval:      duration{250 * time.Millisecond},
		BatchMaxLeaves:     65536,
		RebroadcastAfter:   duration{15 * time.Second},
		IndexRetryMin:      duration{defaultIndexRetryMin},
		IndexRetryMax:      duration{defaultIndexRetryMax},
		QueueSegmentMB:     16,
		ReceiptCacheMB:     32,
		SnapshotInterval:   1000,
		RetainBlocks:       defaultRetainBlocks,
		SnapshotKeepRecent: 2,

		BlockStoreGCInterval: duration{consensus.DefaultBlockStoreGCInterval},

		MaxConnections:          512,
		MaxConnectionsPerSource: 128,
		LeavesCheckedBatches:    defaultLeavesCheckedBatches,
		MaxConnectionAge:        duration{time.Hour},
		MaxConnectionAgeGrace:   duration{5 * time.Minute},
		MaxHTTPBodyBytes:        8 << 20,
		MaxStreamsPerConnection: 64,
		MaxStreamsPerSource:     256,
		MaxOpenStreams:          1024,
		ConnectionRate:          20000,
		TokenRate:               5000,
		HandshakeTimeout:        duration{10 * time.Second},
		IdleTimeout:             duration{5 * time.Minute},
		KeepaliveMinInterval:    duration{30 * time.Second},
		MaxKnownListed:          maxSubmitHashes,
		StatusListCacheMB:       64,
		BroadcastTimeout:        duration{30 * time.Second},
		MaxBroadcastWaits:       1024,
		ReceiptWaitMax:          duration{60 * time.Second},
		MaxReceiptWaits:         4096,

		Memory: defaultMemoryConfig(),
	}
}

// Bounds on app.toml durations: a batch interval below minBatchInterval
// makes the batcher spin on an idle node, and one above maxBatchInterval
// would hold hashes back longer than any issuer waits.
const (
	minBatchInterval = 10 * time.Millisecond
	maxBatchInterval = time.Hour
)

// Defaults of index_retry_min and index_retry_max: a passing fault (a full
// disk freed, a slow device) is retried at once, a lasting one about every
// 10 s without flooding the log.
const (
	defaultIndexRetryMin = 100 * time.Millisecond
	defaultIndexRetryMax = 10 * time.Second
)

// maxQueueSegmentMB keeps a segment's size well inside what a restart
// reads into memory at once.
const maxQueueSegmentMB = 1024

func appConfigPath(home string) string { return filepath.Join(home, "config", "app.toml") }

// loadConfig reads home/config/app.toml over the defaults.
func loadConfig(home string) (*config, error) {
	c := defaultConfig()
	path := appConfigPath(home)
	md, err := toml.DecodeFile(path, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown setting %q", path, und[0].String())
	}
	if d := c.BatchInterval.Duration; d < minBatchInterval || d > maxBatchInterval {
		return nil, fmt.Errorf("%s: batch_interval %s is outside [%s, %s]", path, d, minBatchInterval, maxBatchInterval)
	}
	if c.RebroadcastAfter.Duration < time.Second {
		return nil, fmt.Errorf("%s: rebroadcast_after must be at least 1s", path)
	}
	if c.IndexRetryMin.Duration <= 0 || c.IndexRetryMax.Duration < c.IndexRetryMin.Duration {
		return nil, fmt.Errorf("%s: index_retry_min must be positive and index_retry_max at least index_retry_min", path)
	}
	if err := c.checkLimits(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.BatchMaxLeaves <= 0 {
		return nil, fmt.Errorf("%s: batch_max_leaves must be positive", path)
	}
	if c.QueueSegmentMB < 1 || c.QueueSegmentMB > maxQueueSegmentMB {
		return nil, fmt.Errorf("%s: queue_segment_mb must lie in [1, %d]", path, maxQueueSegmentMB)
	}
	if c.SnapshotInterval < 0 || c.SnapshotKeepRecent < 1 {
		return nil, fmt.Errorf("%s: snapshot_interval must be >= 0 and snapshot_keep_recent >= 1", path)
	}
	if c.RetainBlocks < 0 {
		return nil, fmt.Errorf("%s: retain_blocks must be >= 0 (0 keeps every block)", path)
	}
	if c.BlockStoreGCInterval.Duration < 0 {
		return nil, fmt.Errorf("%s: blockstore_gc_interval must be >= 0 (0 turns it off)", path)
	}
	if c.ReceiptCacheMB <= 0 {
		return nil, fmt.Errorf("%s: receipt_cache_mb must be positive", path)
	}
	if c.LeavesCheckedBatches < 0 {
		return nil, fmt.Errorf("%s: leaves_checked_batches must be 0 or more", path)
	}
	if c.StatusListCacheMB < 0 {
		return nil, fmt.Errorf("%s: status_list_cache_mb must be >= 0 (0 keeps none)", path)
	}
	if c.BroadcastTimeout.Duration <= 0 {
		return nil, fmt.Errorf("%s: broadcast_timeout must be positive", path)
	}
	if c.MaxBroadcastWaits < 1 {
		return nil, fmt.Errorf("%s: max_broadcast_waits must be at least 1", path)
	}
	if c.ReceiptWaitMax.Duration < 0 {
		return nil, fmt.Errorf("%s: receipt_wait_max must be >= 0 (0 never waits)", path)
	}
	if c.MaxReceiptWaits < 1 {
		return nil, fmt.Errorf("%s: max_receipt_waits must be at least 1", path)
	}
	if err := c.Memory.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return nil, fmt.Errorf("%s: tls_cert_file and tls_key_file go together", path)
	}
	for i, is := range c.Issuers {
		if is.ID == "" || is.KeyFile == "" {
			return nil, fmt.Errorf("%s: issuer[%d]: id and key_file are required", path, i)
		}
		if b, err := hex.DecodeString(is.TokenSHA256); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("%s: issuer[%d].token_sha256: want 64 hex digits", path, i)
		}
	}
	return c, nil
}

func writeConfig(home string, c *config) error {
	f, err := os.OpenFile(appConfigPath(home), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString("# Credence node settings; CometBFT's are in config.toml.\n"); err != nil {
		return err
	}
	return toml.NewEncoder(f).Encode(c)
}

// keyFile is the JSON form of an ed25519 key file: an issuer's signing key
// or a member's admin key, named by the id of its owner.
type keyFile struct {
	Owner      string `json:"owner"`
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
}

func writeKeyFile(path, owner string, key ed25519.PrivateKey) error {
	b, err := json.MarshalIndent(keyFile{
		Owner:      owner,
		PublicKey:  proof.FormatBinary(key.Public().(ed25519.PublicKey)),
		PrivateKey: proof.FormatBinary(key.Seed()),
	}, "", "  ")
	if err != nil {
		return err
	}
	return writeSecret(path, append(b, '\n'))
}

// readKeyFile returns a key file's owner and key.
func readKeyFile(path string) (string, ed25519.PrivateKey, error) {
	if err := checkSecretMode(path); err != nil {
		return "", nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	seed, err := proof.ParseBinary(f.PrivateKey)
	if err != nil || len(seed) != ed25519.SeedSize {
		return "", nil, fmt.Errorf("%s: private_key is not a 32-byte ed25519 seed", path)
	}
	return f.Owner, ed25519.NewKeyFromSeed(seed), nil
}

// writeSecret creates a file readable by its owner only, failing if it exists.
func writeSecret(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func checkSecretMode(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: mode %v lets others read a key; chmod 600 it", path, st.Mode().Perm())
	}
	return nil
}

// tokenFile is where init leaves an issuer's API token for CLI use.
func tokenFile(home, issuer string) string {
	return filepath.Join(home, "config", "api-token-"+issuer)
}

// ReadToken returns the API token init stored in home for the node's first
// issuer, for CLI commands given --home.
func ReadToken(home string) (string, error) {
	c, err := loadConfig(home)
	if err != nil {
		return "", err
	}
	if len(c.Issuers) == 0 {
		return "", errors.New("the node anchors for no issuer")
	}
	path := tokenFile(home, c.Issuers[0].ID)
	if err := checkSecretMode(path); err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// authorizer maps API tokens to issuers by their SHA-256, compared in
// constant time.
type authorizer struct {
	hashes  [][]byte
	issuers []string
}

func (a *authorizer) issuer(token string) (string, bool) {
	h := sha256.Sum256([]byte(token))
	found := -1
	for i, want := range a.hashes {
		if subtle.ConstantTimeCompare(h[:], want) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return a.issuers[found], true
}

// MemberKey reads the member admin key that init left in home: the key
// that signs the member's governance transactions.
func MemberKey(home string) (string, ed25519.PrivateKey, error) {
	paths, _ := filepath.Glob(filepath.Join(home, "config", "admin-*.key.json"))
	if len(paths) != 1 {
		return "", nil, fmt.Errorf("%s: want exactly one admin-<member>.key.json, found %d", filepath.Join(home, "config"), len(paths))
	}
	return readKeyFile(paths[0])
}

// IssuerSigningKey reads the key of the first issuer the home's node
// anchors for.
func IssuerSigningKey(home string) (string, ed25519.PrivateKey, error) {
	c, err := loadConfig(home)
	if err != nil {
		return "", nil, err
	}
	if len(c.Issuers) == 0 {
		return "", nil, errors.New("the node at this home anchors for no issuer")
	}
	is := c.Issuers[0]
	_, k, err := readKeyFile(inConfigDir(home, is.KeyFile))
	return is.ID, k, err
}

// HTTPBaseURL is the home's node HTTP API as a URL (http://http_address):
// the default base of the URLs its issuer's status lists name.
func HTTPBaseURL(home string) (string, error) {
	c, err := loadConfig(home)
	if err != nil {
		return "", err
	}
	return "http://" + c.HTTPAddress, nil
}
