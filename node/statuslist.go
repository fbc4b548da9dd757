package node

import (
	"bytes"
	"container/list"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"github.com/credence-ledger/credence/vc"
)

// A status list as a W3C Bitstring Status List credential (VC Data Model
// 2.0). Its wire names (gRPC ExportRegistry, the JSON member
// credenceRegistryExport, /v1/registries) keep the word "registry": clients
// and the chain's state depend on them.
//
// A status list created with a url is served as its issuer signed it: the
// issuer's update transactions carry the credential's encodedList,
// validFrom and Data Integrity proof, the state machine checks them against
// the bits it applies (app.updateStatusListMsg.checkSigned), and every node
// rebuilds the same bytes from state with one builder (app.StatusListOf).
// So every member serves byte-identical signed documents for the same
// (issuer, id, height), and no node signs anything. When the last update
// carried no issuer proof (a sponsor's), the list is served unsigned, and
// every answer says which it is in the Credence-List-Signed header.
//
// A status list created without url (before signed lists) is served as it
// always was: ids are URNs of the chain, the state proof rides inside the
// document (credenceRegistryExport), and it is marked unsigned.
//
// The ledger proof of a signed list is beside it, not in it (undefined
// terms would break its canonicalization): ?format=export answers the
// status list export (protobuf JSON) of the same height.

// statusListDocument is the JSON of a status list without url (the OpenAPI
// document describes it: node/openapi_gen_test.go).
type statusListDocument struct {
	Context           []string          `json:"@context"`
	ID                string            `json:"id"`
	Type              []string          `json:"type"`
	Issuer            string            `json:"issuer"`
	ValidFrom         string            `json:"validFrom"`
	CredentialSubject statusListSubject `json:"credentialSubject"`
	// Height is the chain height whose state the list is.
	Height int64 `json:"credenceHeight"`
	// Export is the status list export (protobuf JSON) that proves the list.
	Export json.RawMessage `json:"credenceRegistryExport"`
}

type statusListSubject struct {
	ID            string `json:"id"`
	Type          string `json:"type"`
	StatusPurpose string `json:"statusPurpose"`
	EncodedList   string `json:"encodedList"`
}

// Response headers of a status list: whether the document carries its
// issuer's proof, and the height whose state it is.
const (
	headerListSigned = "Credence-List-Signed"
	headerListHeight = "Credence-Height"
)

// StatusListPath is where a node serves a status list's credential,
// the same path on every node.
func StatusListPath(issuer, id string) string {
	return "/v1/statuslists/" + issuer + "/" + id
}

// StatusListID is the id of the credential of a status list without url.
func StatusListID(chainID, issuer, id string) string {
	return fmt.Sprintf("urn:credence:%s:statuslist:%s:%s", chainID, issuer, id)
}

// statusListIssuer names an issuer in a document no key of it signed.
func statusListIssuer(chainID, issuer string) string {
	return fmt.Sprintf("urn:credence:%s:issuer:%s", chainID, issuer)
}

// errStateNotKept: the height asked for is older than this node keeps
// (HTTP 410 Gone, gRPC NotFound).
var errStateNotKept = errors.New("state not kept")

func notKeptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errStateNotKept, fmt.Sprintf(format, args...))
}

func (n *Node) statusListHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		issuer, id := r.PathValue("issuer"), r.PathValue("id")
		s := &api{n: n}
		if err := s.statusListArgs(issuer, id); err != nil {
			writeError(w, err)
			return
		}
		height, err := n.statusListHeight(r)
		if err != nil {
			if errors.Is(err, errStateNotKept) {
				writeErrorStatus(w, http.StatusGone, status.Error(codes.NotFound, err.Error()))
				return
			}
			writeError(w, err)
			return
		}
		if r.URL.Query().Get("format") == "export" {
			ex, _, _, err := s.exportStatusListAt(r.Context(), height, issuer, id)
			if err != nil {
				writeError(w, err)
				return
			}
			b, err := protojson.Marshal(ex)
			if err != nil {
				writeError(w, status.Errorf(codes.Internal, "status list export: %v", err))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set(headerListHeight, strconv.FormatInt(height, 10))
			w.Write(append(b, '\n'))
			return
		}
		// What the headers say is read apart from the cached document, at
		// the same height: a height's state never changes.
		// The headers need values only: no proofs.
		rec, _, _, err := s.statusListAt(height, issuer, id, false)
		if err != nil {
			writeError(w, err)
			return
		}
		signed := false
		if rec.Url != "" {
			sd, _, err := s.readKey(height, proof.SignedListKey(issuer, id), false)
			if err != nil {
				writeError(w, status.Errorf(codes.Internal, "signed list: %v", err))
				return
			}
			signed = sd != nil
		}
		key := statusListKey{issuer, id, height}
		doc, err := n.statusLists.get(r.Context(), key, func() ([]byte, int64, error) {
			// Others may wait on this render: it is not cut short when
			// this one reader leaves.
			return n.renderStatusList(context.WithoutCancel(r.Context()), height, issuer, id)
		})
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/vc+ld+json")
		w.Header().Set(headerListSigned, strconv.FormatBool(signed))
		w.Header().Set(headerListHeight, strconv.FormatInt(height, 10))
		if rec.TtlMs > 0 {
			w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", rec.TtlMs/1000))
		}
		w.Write(doc)
	})
}

// statusListHeight is the height a request asks for: ?height=H, or
// ?timestamp=T (the last height whose block time is at most T), or the
// newest provable state.
func (n *Node) statusListHeight(r *http.Request) (int64, error) {
	q := r.URL.Query()
	newest, err := n.newestProvable()
	if err != nil {
		return 0, err
	}
	hs, ts := q.Get("height"), q.Get("timestamp")
	var h int64
	switch {
	case hs != "" && ts != "":
		return 0, status.Error(codes.InvalidArgument, "give height or timestamp, not both")
	case hs != "":
		v, err := strconv.ParseInt(hs, 10, 64)
		if err != nil || v < 1 {
			return 0, status.Errorf(codes.InvalidArgument, "height: %s is not a positive integer", quoted(hs))
		}
		if v > newest {
			return 0, status.Errorf(codes.NotFound, "height %d is above the newest provable state %d", v, newest)
		}
		h = v
	case ts != "":
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return 0, status.Errorf(codes.InvalidArgument, "timestamp: %s is not RFC 3339", quoted(ts))
		}
		if h, err = n.heightAt(r.Context(), t, newest); err != nil {
			return 0, err
		}
	default:
		return newest, nil
	}
	if !n.stateKept(r.Context(), h) {
		return 0, notKeptf("height %d; the oldest height this node keeps is %d", h, n.oldestKept(r.Context(), newest))
	}
	return h, nil
}

// newestProvable is the newest state a committed header proves (see
// provenState), without reading that header.
func (n *Node) newestProvable() (int64, error) {
	h := n.app.Height() - 2
	if h < 1 {
		return 0, status.Error(codes.Unavailable, "the chain has no provable state yet")
	}
	return h, nil
}

// stateKept: this node still holds the state at h and the header that
// proves it.
func (n *Node) stateKept(ctx context.Context, h int64) bool {
	res, err := n.app.Query(ctx, &abci.RequestQuery{Path: "/key", Data: []byte(proof.KeyParams), Height: h})
	if err != nil || res.Code != 0 {
		return false
	}
	_, err = n.receipts.header(ctx, h+1)
	return err == nil
}

// oldestKept is the first height stateKept holds, up to newest; what is
// kept is a range ending at the newest state, so a binary search finds it.
func (n *Node) oldestKept(ctx context.Context, newest int64) int64 {
	lo, hi := int64(1), newest
	for lo < hi {
		mid := lo + (hi-lo)/2
		if n.stateKept(ctx, mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// heightAt is the last height up to newest whose block time is at most t.
func (n *Node) heightAt(ctx context.Context, t time.Time, newest int64) (int64, error) {
	at := func(h int64) (time.Time, error) {
		res, err := n.rpc.Header(ctx, &h)
		if err != nil {
			return time.Time{}, err
		}
		return res.Header.Time, nil
	}
	lo, hi := n.oldestKept(ctx, newest), newest
	first, err := at(lo)
	if err != nil {
		return 0, status.Errorf(codes.Unavailable, "block time of height %d: %v", lo, err)
	}
	if t.Before(first) {
		return 0, notKeptf("timestamp %s is before height %d (%s), the oldest height this node keeps",
			t.UTC().Format(time.RFC3339), lo, first.UTC().Format(time.RFC3339))
	}
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		mt, err := at(mid)
		if err != nil {
			return 0, status.Errorf(codes.Unavailable, "block time of height %d: %v", mid, err)
		}
		if mt.After(t) {
			hi = mid - 1
		} else {
			lo = mid
		}
	}
	return lo, nil
}

// exportStatusListAt is the status list export of the state at height, with the
// header and validator links that prove it, the decoded record and the
// bitstring.
func (s *api) exportStatusListAt(ctx context.Context, height int64, issuer, id string) (*proof.RegistryExport, *pb.Registry, []byte, error) {
	hdr, err := s.n.receipts.header(ctx, height+1)
	if err != nil {
		return nil, nil, nil, status.Errorf(codes.Unavailable, "header %d: %v", height+1, err)
	}
	_, links, err := s.n.receipts.links(ctx, height+1)
	if err != nil {
		return nil, nil, nil, status.Errorf(codes.Internal, "validator links: %v", err)
	}
	r, rec, recProof, err := s.statusListAt(height, issuer, id, true)
	if err != nil {
		return nil, nil, nil, err
	}
	ex := &proof.RegistryExport{
		Version: proof.StatusVersion, ChainId: s.n.chainID, Height: height,
		SignedHeader: hdr.signedHeader, Validators: hdr.validators, ValidatorLinks: links,
		RegistryRecord: rec, RegistryProof: recProof,
	}
	bits := make([]byte, r.Size/8)
	for c := uint32(0); uint64(c)*proof.ChunkBits < r.Size; c++ {
		chunk, chunkProof, err := s.proveKey(height, proof.ChunkKey(issuer, id, c))
		if err != nil {
			return nil, nil, nil, status.Errorf(codes.Internal, "chunk %d: %v", c, err)
		}
		ex.Chunks = append(ex.Chunks, &proof.ChunkProof{Index: c, Chunk: chunk, Proof: chunkProof})
		copy(bits[int(c)*proof.ChunkBits/8:], chunk)
	}
	if ex.EncodedList, err = proof.EncodeStatusList(bits); err != nil {
		return nil, nil, nil, status.Errorf(codes.Internal, "encode: %v", err)
	}
	return ex, r, bits, nil
}

// renderStatusList builds the document of the state at height.
func (n *Node) renderStatusList(ctx context.Context, height int64, issuer, id string) ([]byte, int64, error) {
	s := &api{n: n}
	ex, rec, bits, err := s.exportStatusListAt(ctx, height, issuer, id)
	if err != nil {
		return nil, 0, err
	}
	// The node checks what it is about to vouch for, and learns the
	// block time from the proven state.
	_, got, err := proof.VerifyRegistryExport(ex, n.trust, 0, time.Now())
	if err != nil {
		return nil, 0, status.Errorf(codes.Internal, "this node's own status list export does not verify: %v", err)
	}
	var doc []byte
	if rec.Url == "" {
		doc, err = n.legacyStatusList(ex, got)
	} else {
		doc, err = n.urlStatusList(s, height, rec, bits, ex, got)
	}
	if err != nil {
		return nil, 0, err
	}
	n.statusLists.renders.Add(1)
	return doc, height, nil
}

func (n *Node) legacyStatusList(ex *proof.RegistryExport, got *proof.RegistryResult) ([]byte, error) {
	exJSON, err := protojson.Marshal(ex)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "status list export: %v", err)
	}
	docID := StatusListID(n.chainID, got.Issuer, got.ID)
	doc := statusListDocument{
		Context:   []string{"https://www.w3.org/ns/credentials/v2"},
		ID:        docID,
		Type:      []string{"VerifiableCredential", "BitstringStatusListCredential"},
		Issuer:    statusListIssuer(n.chainID, got.Issuer),
		ValidFrom: got.Time.UTC().Format(time.RFC3339),
		CredentialSubject: statusListSubject{
			ID: docID + "#list", Type: "BitstringStatusList",
			StatusPurpose: got.Purpose, EncodedList: ex.EncodedList,
		},
		Height: ex.Height,
		Export: exJSON,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, status.Errorf(codes.Internal, "status list: %v", err)
	}
	return append(b, '\n'), nil
}

// urlStatusList is the signed document of a status list with url, rebuilt
// from what its issuer signed, or, when the last update was not the
// issuer's, the unsigned document of its bits. A signed document is served
// only once the node has verified it as any verifier would and found it
// lists the proven bits: never a signature that does not hold.
func (n *Node) urlStatusList(s *api, height int64, rec *pb.Registry, bits []byte, ex *proof.RegistryExport, got *proof.RegistryResult) ([]byte, error) {
	raw, _, err := s.readKey(height, proof.SignedListKey(rec.Issuer, rec.Id), false)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "signed list: %v", err)
	}
	if raw == nil {
		doc, err := app.StatusListOf(rec, statusListIssuer(n.chainID, rec.Issuer),
			got.Time.UTC().Format(time.RFC3339), ex.EncodedList).Document()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "status list: %v", err)
		}
		return doc, nil
	}
	var sd pb.SignedStatusList
	if err := proto.Unmarshal(raw, &sd); err != nil {
		return nil, status.Errorf(codes.Internal, "signed list: %v", err)
	}
	did, err := proofDID(sd.Proof)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "signed list of %s/%s at height %d: %v", rec.Issuer, rec.Id, height, err)
	}
	doc, err := app.StatusListOf(rec, did, sd.ValidFrom, sd.EncodedList).SignedDocument(sd.Proof)
	if err == nil {
		_, err = vc.Verify(doc, vc.ResolveDIDKey)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "the signed list of %s/%s at height %d does not verify; not served: %v", rec.Issuer, rec.Id, height, err)
	}
	listed, err := proof.DecodeStatusList(sd.EncodedList, len(bits))
	if err != nil || !bytes.Equal(listed, bits) {
		return nil, status.Errorf(codes.Internal, "the signed list of %s/%s at height %d is not the proven bits; not served", rec.Issuer, rec.Id, height)
	}
	return doc, nil
}

// proofDID is the DID of a proof's verificationMethod: the state machine
// accepted the proof only as the did:key of the key that signed the update.
func proofDID(prf []byte) (string, error) {
	var p struct {
		VerificationMethod string `json:"verificationMethod"`
	}
	if err := json.Unmarshal(prf, &p); err != nil {
		return "", err
	}
	did, _, _ := strings.Cut(p.VerificationMethod, "#")
	if _, err := vc.ResolveDIDKey(did); err != nil {
		return "", err
	}
	return did, nil
}

// statusListCache keeps rendered status list documents, by (issuer, id,
// height), least recently used first out, within max bytes. A state at a
// height never changes, so an entry never goes stale; it only ages out.
// Readers of a key not yet kept wait for the one render under way.
type statusListCache struct {
	max int64
	// renders counts documents built (each an export, its verification
	// and its JSON), the work the cache saves.
	renders atomic.Int64

	mu      sync.Mutex
	size    int64
	lru     *list.List // of *statusListEntry, most recent first
	entries map[statusListKey]*list.Element
	pending map[statusListKey]*statusListRender
}

type statusListKey struct {
	issuer, id string
	height     int64
}

type statusListEntry struct {
	key statusListKey
	doc []byte
}

// statusListRender is a render under way; done closes when doc or err is set.
type statusListRender struct {
	done chan struct{}
	doc  []byte
	err  error
}

func newStatusListCache(max int64) *statusListCache {
	return &statusListCache{max: max, lru: list.New(),
		entries: map[statusListKey]*list.Element{}, pending: map[statusListKey]*statusListRender{}}
}

// get answers key's document, from the cache, from a render under way, or
// from render, which answers the height it rendered: the state may have
// moved on since key was chosen, and the document is kept under its own.
func (c *statusListCache) get(ctx context.Context, key statusListKey, render func() ([]byte, int64, error)) ([]byte, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		c.lru.MoveToFront(e)
		c.mu.Unlock()
		return e.Value.(*statusListEntry).doc, nil
	}
	if p, ok := c.pending[key]; ok {
		c.mu.Unlock()
		select {
		case <-p.done:
			return p.doc, p.err
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	p := &statusListRender{done: make(chan struct{})}
	c.pending[key] = p
	c.mu.Unlock()

	doc, height, err := render()
	p.doc, p.err = doc, err
	c.mu.Lock()
	delete(c.pending, key)
	if err == nil {
		c.put(statusListKey{key.issuer, key.id, height}, doc)
	}
	c.mu.Unlock()
	close(p.done)
	return doc, err
}

// put keeps doc under key, dropping the least recently used to stay within
// max; a document larger than max is not kept. c.mu is held.
func (c *statusListCache) put(key statusListKey, doc []byte) {
	cost := int64(len(doc) + len(key.issuer) + len(key.id))
	if _, ok := c.entries[key]; ok || cost > c.max {
		return
	}
	for c.size+cost > c.max {
		old := c.lru.Back()
		e := old.Value.(*statusListEntry)
		c.lru.Remove(old)
		delete(c.entries, e.key)
		c.size -= int64(len(e.doc) + len(e.key.issuer) + len(e.key.id))
	}
	c.entries[key] = c.lru.PushFront(&statusListEntry{key, doc})
	c.size += cost
}

// SignedStatusListUpdate is the issuer's update of the status list ex
// exports: set and clear applied to its bits, encoded, and the resulting
// credential signed with key (the issuer's, whose did:key the credential
// names), valid from validFrom. The CLI and the tests both build updates
// with it. The transaction is refused (app.ErrListMoved) if the list
// changed after ex; build it again from a newer export then.
func SignedStatusListUpdate(ex *proof.RegistryExport, set, clear []uint64, key ed25519.PrivateKey, validFrom time.Time) (*pb.UpdateRegistry, error) {
	var rec pb.Registry
	if err := proto.Unmarshal(ex.RegistryRecord, &rec); err != nil {
		return nil, fmt.Errorf("status list record: %w", err)
	}
	if rec.Url == "" {
		return nil, fmt.Errorf("status list %s/%s has no url: it is not signed", rec.Issuer, rec.Id)
	}
	bits := make([]byte, rec.Size/8)
	for _, ch := range ex.Chunks {
		copy(bits[int(ch.Index)*proof.ChunkBits/8:], ch.Chunk)
	}
	for _, i := range append(append([]uint64(nil), set...), clear...) {
		if i >= rec.Size {
			return nil, fmt.Errorf("index %d is outside the status list's %d entries", i, rec.Size)
		}
	}
	for _, i := range set {
		bits[i/8] |= 0x80 >> (i % 8)
	}
	for _, i := range clear {
		bits[i/8] &^= 0x80 >> (i % 8)
	}
	enc, err := proof.EncodeStatusList(bits)
	if err != nil {
		return nil, err
	}
	did, err := vc.DIDKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	vf := validFrom.UTC().Truncate(time.Second).Format(time.RFC3339)
	prf, err := app.StatusListOf(&rec, did, vf, enc).Sign(key)
	if err != nil {
		return nil, err
	}
	return &pb.UpdateRegistry{Issuer: rec.Issuer, Id: rec.Id, Set: set, Clear: clear,
		EncodedList: enc, ValidFrom: vf, Proof: prf}, nil
}
