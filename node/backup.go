package node

// Backup of the queue: the hashes this node acknowledged and has not
// anchored live only in its data/ (the queue log and the batches in flight
// under qf/); the chain and its index come back by state sync, these do
// not. The running node writes them out on request (BackupQueue) over a
// local socket only its owner can reach, and takes them back the same way
// (RestoreQueue) through the ordinary group commit, so a hash anchored
// meanwhile is answered anchored and a stale backup is safe to restore.
//
// The file is JSON lines (docs/operations.md, "Backup and disaster
// recovery"):
//
//	{"format":"credence-queue-backup","version":1,"chain_id":"…","hashes":N}
//	{"issuer":"acme","hash":"<64 hex>"}          × N
//	{"end":true,"hashes":N,"sha256":"<hex of every byte before this line>"}

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

const (
	queueBackupFormat  = "credence-queue-backup"
	queueBackupVersion = 1
	// maxBackupLine bounds one line of a backup file: the longest line the
	// node writes (the header, with a chain id) is far below it.
	maxBackupLine = 4096
)

// errBadBackup is a queue backup file the node will not restore: torn,
// edited, or of another chain or node.
var errBadBackup = errors.New("queue backup refused")

// adminSocket is the local socket of a running node's admin calls (queue
// backup and restore). It lives in a directory only the node's user may
// enter: whoever can reach it may read and add this node's queue.
func adminSocket(home string) string { return filepath.Join(home, "data", "admin", "admin.sock") }

type backupHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	ChainID string `json:"chain_id"`
	Hashes  int    `json:"hashes"`
}

type backupEntry struct {
	Issuer string `json:"issuer"`
	Hash   string `json:"hash"`
}

type backupEnd struct {
	End    bool   `json:"end"`
	Hashes int    `json:"hashes"`
	SHA256 string `json:"sha256"`
}

type issuerHashes struct {
	issuer string
	hashes []byte
}

// unanchored is every hash acknowledged here and not yet anchored, per
// issuer (sorted), batches in flight first by sequence, then the queue in
// order. It is read under mu, where every stage changes the state only
// after its disk write: a hash acknowledged before the call is in it or,
// released, already in the index (which state sync brings back).
func (p *pipeline) unanchored() []issuerHashes {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := make(map[string]bool)
	var issuers []string
	for is := range p.pending {
		if !seen[is] {
			seen[is] = true
			issuers = append(issuers, is)
		}
	}
	for is := range p.inflight {
		if !seen[is] {
			seen[is] = true
			issuers = append(issuers, is)
		}
	}
	sort.Strings(issuers)
	var out []issuerHashes
	for _, is := range issuers {
		var hs []byte
		seqs := make([]uint64, 0, len(p.inflight[is]))
		for seq := range p.inflight[is] {
			seqs = append(seqs, seq)
		}
		sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
		for _, seq := range seqs {
			hs = append(hs, p.inflight[is][seq].hashes...)
		}
		for _, q := range p.pending[is] {
			hs = append(hs, q.hash[:]...)
		}
		if len(hs) > 0 {
			out = append(out, issuerHashes{is, hs})
		}
	}
	return out
}

// writeQueueBackup writes the backup file of queues to w.
func writeQueueBackup(w io.Writer, chainID string, queues []issuerHashes) (int, error) {
	n := 0
	for _, q := range queues {
		n += len(q.hashes) / proof.HashSize
	}
	sum := sha256.New()
	bw := bufio.NewWriter(io.MultiWriter(w, sum))
	enc := json.NewEncoder(bw)
	if err := enc.Encode(backupHeader{Format: queueBackupFormat, Version: queueBackupVersion, ChainID: chainID, Hashes: n}); err != nil {
		return 0, err
	}
	for _, q := range queues {
		for _, h := range leaves(q.hashes) {
			if err := enc.Encode(backupEntry{Issuer: q.issuer, Hash: hex.EncodeToString(h[:])}); err != nil {
				return 0, err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	end, err := json.Marshal(backupEnd{End: true, Hashes: n, SHA256: hex.EncodeToString(sum.Sum(nil))})
	if err != nil {
		return 0, err
	}
	if _, err := w.Write(append(end, '\n')); err != nil {
		return 0, err
	}
	return n, nil
}

// readQueueBackup reads and checks a whole backup file: nothing of a file
// torn or edited is restored. maxHashes bounds what is held in memory (a
// node's queue never holds more than max_queued_hashes).
func readQueueBackup(r io.Reader, maxHashes int) (chainID string, queues []issuerHashes, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxBackupLine)
	sum := sha256.New()
	line := 0
	next := func() ([]byte, bool) {
		if !sc.Scan() {
			return nil, false
		}
		line++
		return sc.Bytes(), true
	}
	b, ok := next()
	if !ok {
		if sc.Err() != nil {
			return "", nil, fmt.Errorf("%w: line 1: %v", errBadBackup, sc.Err())
		}
		return "", nil, fmt.Errorf("%w: empty file", errBadBackup)
	}
	var h backupHeader
	if err := strictJSON(b, &h); err != nil || h.Format != queueBackupFormat {
		return "", nil, fmt.Errorf("%w: line 1 is not a %s header", errBadBackup, queueBackupFormat)
	}
	if h.Version != queueBackupVersion {
		return "", nil, fmt.Errorf("%w: version %d, this node reads version %d", errBadBackup, h.Version, queueBackupVersion)
	}
	if h.Hashes < 0 || h.Hashes > maxHashes {
		return "", nil, fmt.Errorf("%w: header says %d hashes, over this node's max_queued_hashes (%d)", errBadBackup, h.Hashes, maxHashes)
	}
	sum.Write(b)
	sum.Write([]byte{'\n'})
	index := make(map[string]int)
	count := 0
	for {
		b, ok := next()
		if !ok {
			if sc.Err() != nil {
				return "", nil, fmt.Errorf("%w: line %d: %v", errBadBackup, line+1, sc.Err())
			}
			return "", nil, fmt.Errorf("%w: no end line after %d hashes: the file is cut short", errBadBackup, count)
		}
		if bytes.HasPrefix(b, []byte(`{"end"`)) {
			var e backupEnd
			if err := strictJSON(b, &e); err != nil || !e.End {
				return "", nil, fmt.Errorf("%w: line %d: not an end line", errBadBackup, line)
			}
			if e.Hashes != count || count != h.Hashes {
				return "", nil, fmt.Errorf("%w: %d hashes in the file, header says %d, end line says %d", errBadBackup, count, h.Hashes, e.Hashes)
			}
			if got := hex.EncodeToString(sum.Sum(nil)); got != e.SHA256 {
				return "", nil, fmt.Errorf("%w: checksum mismatch (SHA-256 %s, end line says %s): the file was changed", errBadBackup, got, e.SHA256)
			}
			if _, more := next(); more || sc.Err() != nil {
				return "", nil, fmt.Errorf("%w: line %d: data after the end line", errBadBackup, line)
			}
			return h.ChainID, queues, nil
		}
		var e backupEntry
		if err := strictJSON(b, &e); err != nil {
			return "", nil, fmt.Errorf("%w: line %d: %v", errBadBackup, line, err)
		}
		hb, err := hex.DecodeString(e.Hash)
		if err != nil || len(hb) != proof.HashSize {
			return "", nil, fmt.Errorf("%w: line %d: hash %s is not 64 hex digits", errBadBackup, line, quoted(e.Hash))
		}
		if e.Issuer == "" {
			return "", nil, fmt.Errorf("%w: line %d: no issuer", errBadBackup, line)
		}
		if count++; count > h.Hashes {
			return "", nil, fmt.Errorf("%w: more hashes than the header's %d", errBadBackup, h.Hashes)
		}
		i, ok := index[e.Issuer]
		if !ok {
			i = len(queues)
			index[e.Issuer] = i
			queues = append(queues, issuerHashes{issuer: e.Issuer})
		}
		queues[i].hashes = append(queues[i].hashes, hb...)
		sum.Write(b)
		sum.Write([]byte{'\n'})
	}
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// RestoreResult is what a queue restore did with the backup's hashes.
type RestoreResult struct {
	// Hashes in the backup.
	Hashes uint64 `json:"hashes"`
	// Queued anew: acknowledged again, now durable in this node's queue.
	Queued uint64 `json:"queued"`
	// Pending: already queued or in flight here.
	Pending uint64 `json:"pending"`
	// Anchored already (restored by state sync, or anchored since).
	Anchored uint64 `json:"anchored"`
}

// restoreQueue submits a backup's hashes through the group commit, issuer
// by issuer. Every issuer must be one of this node's before anything is
// submitted; a failure midway leaves what was submitted queued, and
// restoring the same file again is safe.
func (p *pipeline) restoreQueue(ctx context.Context, chainID string, r io.Reader) (RestoreResult, error) {
	var res RestoreResult
	fileChain, queues, err := readQueueBackup(r, p.cfg.Memory.MaxQueuedHashes)
	if err != nil {
		return res, err
	}
	if fileChain != chainID {
		return res, fmt.Errorf("%w: the backup is of chain %q, this node is on %q", errBadBackup, fileChain, chainID)
	}
	for _, q := range queues {
		if _, ok := p.keys[q.issuer]; !ok {
			return res, fmt.Errorf("%w: issuer %s is not configured on this node (app.toml [[issuers]]): restore the backup on the node that holds its key", errBadBackup, quoted(q.issuer))
		}
		res.Hashes += uint64(len(q.hashes) / proof.HashSize)
	}
	for _, q := range queues {
		for off := 0; off < len(q.hashes); off += maxSubmitHashes * proof.HashSize {
			chunk := q.hashes[off:min(len(q.hashes), off+maxSubmitHashes*proof.HashSize)]
			if err := p.live.refuse(q.issuer); err != nil {
				return res, fmt.Errorf("issuer %s: %w", q.issuer, err)
			}
			sr, err := p.submit(ctx, q.issuer, chunk, 0)
			if err != nil {
				return res, fmt.Errorf("issuer %s: %w", q.issuer, err)
			}
			res.Queued += sr.queued
			for _, k := range sr.known {
				if k.State == pb.HashState_HASH_STATE_ANCHORED {
					res.Anchored++
				} else {
					res.Pending++
				}
			}
		}
	}
	return res, nil
}

// adminServer serves adminSocket.
type adminServer struct {
	srv *http.Server
	lis net.Listener
}

// startAdmin listens on adminSocket(home). A socket left by a node that
// died is removed first: the database lock already proved no other node
// runs on this home.
func (n *Node) startAdmin(home string) error {
	path := adminSocket(home)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	// MkdirAll keeps an existing directory's mode.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("admin socket: %w", err)
		}
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /queue/backup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jsonl")
		count, err := writeQueueBackup(w, n.chainID, n.pipe.unanchored())
		if err != nil {
			n.log.Warn("queue backup not written whole", "err", err)
			return
		}
		n.log.Info("queue backup written", "hashes", count)
	})
	mux.HandleFunc("POST /queue/restore", func(w http.ResponseWriter, r *http.Request) {
		res, err := n.pipe.restoreQueue(r.Context(), n.chainID, r.Body)
		if err != nil {
			code := http.StatusInternalServerError
			switch {
			case errors.Is(err, errBadBackup):
				code = http.StatusBadRequest
			case errors.Is(err, errQueueFull), errors.Is(err, errStopped), errors.Is(err, errIndexFailing), errors.Is(err, errKeyNotValid):
				code = http.StatusServiceUnavailable
			}
			n.log.Warn("queue restore stopped", "err", err, "queued", res.Queued, "pending", res.Pending, "anchored", res.Anchored)
			http.Error(w, fmt.Sprintf("%v (of %d hashes: %d queued, %d already pending, %d already anchored before it stopped; restoring the file again is safe)", err, res.Hashes, res.Queued, res.Pending, res.Anchored), code)
			return
		}
		n.log.Info("queue restored", "hashes", res.Hashes, "queued", res.Queued, "pending", res.Pending, "anchored", res.Anchored)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn)}
	n.admin = &adminServer{lis: lis, srv: srv}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("admin socket stopped", "err", err)
		}
	}()
	return nil
}

func (n *Node) stopAdmin() {
	if n.admin == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.admin.srv.Shutdown(ctx); err != nil {
		n.admin.srv.Close()
	}
	n.admin = nil
}

func adminClient(home string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", adminSocket(home))
		},
	}}
}

func adminError(home string, err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("no node is running on %s (nothing listens on %s): start it, then run this again: %w", home, adminSocket(home), err)
	}
	return err
}

// BackupQueue asks the node running on home for every hash it acknowledged
// and has not anchored, and writes the backup file to w; it returns how
// many hashes it holds. The file is checked before it is reported whole.
func BackupQueue(ctx context.Context, home string, w io.Writer) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://credenced/queue/backup", nil)
	if err != nil {
		return 0, err
	}
	resp, err := adminClient(home).Do(req)
	if err != nil {
		return 0, adminError(home, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("queue backup: %s", bytes.TrimSpace(msg))
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, resp.Body); err != nil {
		return 0, fmt.Errorf("queue backup: %w", err)
	}
	// A connection cut midway must not leave a file that looks whole.
	_, queues, err := readQueueBackup(bytes.NewReader(buf.Bytes()), int(^uint(0)>>1))
	if err != nil {
		return 0, fmt.Errorf("queue backup as received: %w", err)
	}
	n := 0
	for _, q := range queues {
		n += len(q.hashes) / proof.HashSize
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return n, nil
}

// RestoreQueue hands a backup file to the node running on home, which
// queues every hash in it not already anchored or waiting there.
func RestoreQueue(ctx context.Context, home string, r io.Reader) (RestoreResult, error) {
	var res RestoreResult
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://credenced/queue/restore", r)
	if err != nil {
		return res, err
	}
	resp, err := adminClient(home).Do(req)
	if err != nil {
		return res, adminError(home, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return res, fmt.Errorf("queue restore: %s", bytes.TrimSpace(msg))
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return res, fmt.Errorf("queue restore: answer: %w", err)
	}
	return res, nil
}
