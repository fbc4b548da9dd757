package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/mempool"
	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

type api struct {
	pb.UnimplementedCredenceServer
	n      *Node
	writes *tokenLimits
	// maxKnownListed bounds the known hashes one SubmitStream answer lists.
	maxKnownListed int
	// proposalReads counts proposals read from state, the work that
	// ListProposals' limit bounds.
	proposalReads atomic.Int64
}

// authenticate finds the issuer of the call's bearer token and charges the
// call to that issuer's write rate.
func (s *api) authenticate(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	issuer, err := bearerIssuer(s.n.auth, md.Get("authorization"))
	if err != nil {
		return "", err
	}
	if err := s.writes.allow(issuer); err != nil {
		return "", err
	}
	return issuer, nil
}

// quoted renders client input for an error message, cut short: an answer
// must not echo megabytes back.
func quoted(s string) string {
	const max = 64
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:max], len(s))
}

func checkHashes(b []byte, field string) error {
	switch {
	case len(b) == 0:
		return status.Errorf(codes.InvalidArgument, "%s: no hashes", field)
	case len(b)%proof.HashSize != 0:
		return status.Errorf(codes.InvalidArgument, "%s: %d bytes is not a whole number of 32-byte SHA-256 hashes", field, len(b))
	case len(b)/proof.HashSize > maxSubmitHashes:
		return status.Errorf(codes.InvalidArgument, "%s: %d hashes, at most %d per request", field, len(b)/proof.HashSize, maxSubmitHashes)
	}
	return nil
}

func (s *api) Submit(ctx context.Context, req *pb.SubmitRequest) (*pb.SubmitResponse, error) {
	issuer, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkHashes(req.GetHashes(), "hashes"); err != nil {
		return nil, err
	}
	// Before anything is acknowledged: a hash this node cannot anchor now
	// must not be queued (liveness.go), nor one taken while it halts for
	// an upgrade (upgrade.go).
	if err := s.n.upgradeRefusal(); err != nil {
		return nil, err
	}
	if err := s.n.pipe.live.refuse(issuer); err != nil {
		return nil, submitError(err)
	}
	began := time.Now()
	res, err := s.n.pipe.submit(ctx, issuer, req.Hashes, 0)
	if err != nil {
		return nil, submitError(err)
	}
	metricSubmitAck.Observe(time.Since(began).Seconds())
	return &pb.SubmitResponse{Queued: res.queued, Known: res.known}, nil
}

func submitError(err error) error {
	switch {
	case errors.Is(err, errStopped):
		return status.Error(codes.Unavailable, "node is stopping; nothing of this request was queued")
	case errors.Is(err, errIndexFailing):
		return status.Errorf(codes.Unavailable, "%v; nothing of this request was queued; retry later", err)
	case errors.Is(err, errKeyNotValid):
		return status.Errorf(codes.FailedPrecondition, "%v; nothing of this request was queued", err)
	case errors.Is(err, errQueueFull):
		return status.Errorf(codes.ResourceExhausted, "%v; nothing of this request was queued; retry once batches are anchored", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, errStoreDamaged):
		// The duplicate check read damaged leaves: neither "anchored" nor
		// "queued" can be told truthfully.
		return status.Errorf(codes.DataLoss, "%v; nothing of this request was queued (docs/operations.md, \"Recovering a damaged store\")", err)
	default:
		return status.Errorf(codes.Internal, "queue: %v", err)
	}
}

// SubmitStream queues each request as it arrives; the answer, sent once the
// client closes its side, covers them all and says every hash is durable.
func (s *api) SubmitStream(stream pb.Credence_SubmitStreamServer) error {
	issuer, err := s.authenticate(stream.Context())
	if err != nil {
		return err
	}
	out := &pb.SubmitResponse{}
	var base uint64
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(out)
		}
		if err != nil {
			return err
		}
		if err := checkHashes(req.GetHashes(), "hashes"); err != nil {
			return status.Errorf(codes.InvalidArgument, "message at hash index %d: %s (earlier messages are queued)", base, status.Convert(err).Message())
		}
		if err := s.n.upgradeRefusal(); err != nil {
			st := status.Convert(err)
			return status.Errorf(st.Code(), "message at hash index %d: %s (earlier messages are queued)", base, st.Message())
		}
		if err := s.n.pipe.live.refuse(issuer); err != nil {
			st := status.Convert(submitError(err))
			return status.Errorf(st.Code(), "message at hash index %d: %s (earlier messages are queued)", base, st.Message())
		}
		began := time.Now()
		res, err := s.n.pipe.submit(stream.Context(), issuer, req.Hashes, base)
		if errors.Is(err, errQueueFull) {
			return status.Errorf(codes.ResourceExhausted, "message at hash index %d: %v; retry from it once batches are anchored (earlier messages are queued)", base, err)
		}
		if err != nil {
			return submitError(err)
		}
		metricSubmitAck.Observe(time.Since(began).Seconds())
		out.Queued += res.queued
		room := max(0, s.maxKnownListed-len(out.Known))
		listed := min(room, len(res.known))
		out.Known = append(out.Known, res.known[:listed]...)
		out.KnownNotListed += uint64(len(res.known) - listed)
		base += uint64(len(req.Hashes) / proof.HashSize)
	}
}

func (s *api) GetReceipt(ctx context.Context, req *pb.GetReceiptRequest) (*pb.GetReceiptResponse, error) {
	if len(req.GetHash()) != proof.HashSize {
		return nil, status.Errorf(codes.InvalidArgument, "hash: %d bytes, want a 32-byte SHA-256", len(req.GetHash()))
	}
	if req.Issuer != "" && app.ValidID(req.Issuer) != nil {
		return nil, status.Errorf(codes.InvalidArgument, "issuer: %s is not a valid issuer id", quoted(req.Issuer))
	}
	began := time.Now()
	a := s.n.receiptWaits.wait(ctx, time.Duration(req.WaitMs)*time.Millisecond, s.n.idx.indexedHeight, func() receiptAnswer {
		// Waiting first, the index second: the indexer writes a hash's
		// position before the hash stops waiting, so a hash not waiting
		// now is found in the index below if it was ever anchored. In the
		// other order a batch indexed between the two reads would be
		// answered NotFound.
		waiting := s.n.pipe.isWaiting(req.Hash, req.Issuer)
		r, err := s.n.receipts.build(ctx, req.Hash, req.Issuer)
		return receiptAnswer{receipt: r, err: err, waiting: waiting}
	})
	r, err := a.receipt, a.err
	switch {
	case errors.Is(err, errNotFound):
		if a.waiting {
			return nil, status.Errorf(codes.Unavailable, "hash %s is queued or in a batch not yet final; try again shortly", proof.FormatBinary(req.Hash))
		}
		return nil, status.Errorf(codes.NotFound, "hash %s is not anchored (as far as this node has indexed)", proof.FormatBinary(req.Hash))
	case errors.Is(err, errNotFinal):
		return nil, status.Errorf(codes.Unavailable, "hash %s: %v; try again shortly", proof.FormatBinary(req.Hash), err)
	case errors.Is(err, errStoreDamaged):
		return nil, status.Errorf(codes.DataLoss, "receipt: %v (docs/operations.md, \"Recovering a damaged store\")", err)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "receipt: %v", err)
	}
	metricReceipts.Inc()
	metricReceiptLatency.Observe(time.Since(began).Seconds())
	return &pb.GetReceiptResponse{Receipt: r}, nil
}

func (s *api) GetBatch(_ context.Context, req *pb.GetBatchRequest) (*pb.GetBatchResponse, error) {
	if app.ValidID(req.GetIssuer()) != nil {
		return nil, status.Errorf(codes.InvalidArgument, "issuer: %s is not a valid issuer id", quoted(req.GetIssuer()))
	}
	if req.Seq == 0 {
		return nil, status.Error(codes.InvalidArgument, "seq: batch sequence numbers start at 1")
	}
	var rec, hashes []byte
	err := s.n.db.View(func(txn *badger.Txn) error {
		var err error
		if rec, err = getValue(txn, xrKey(req.Issuer, req.Seq)); err != nil {
			return err
		}
		if req.IncludeHashes {
			hashes, err = s.n.index.leavesOf(txn, req.Issuer, req.Seq)
		}
		return err
	})
	if errors.Is(err, errNotFound) {
		return nil, status.Errorf(codes.NotFound, "batch %s/%d is not indexed on this node", req.Issuer, req.Seq)
	}
	if errors.Is(err, errStoreDamaged) {
		return nil, status.Errorf(codes.DataLoss, "batch %s/%d: %v (docs/operations.md, \"Recovering a damaged store\")", req.Issuer, req.Seq, err)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "batch: %v", err)
	}
	var r proof.BatchRecord
	if err := proto.Unmarshal(rec, &r); err != nil {
		return nil, status.Errorf(codes.DataLoss, "batch %s/%d: the index's record does not decode (%v); this node's index is damaged (docs/operations.md, \"Recovering a damaged store\")", req.Issuer, req.Seq, err)
	}
	if req.IncludeHashes && uint64(len(hashes)) != r.LeafCount*proof.HashSize {
		return nil, status.Errorf(codes.DataLoss, "batch %s/%d: the index holds %d bytes of leaves for %d hashes; this node's index is damaged (docs/operations.md, \"Recovering a damaged store\")", req.Issuer, req.Seq, len(hashes), r.LeafCount)
	}
	return &pb.GetBatchResponse{Record: &r, Hashes: hashes}, nil
}

func (s *api) NodeInfo(ctx context.Context, _ *pb.NodeInfoRequest) (*pb.NodeInfoResponse, error) {
	st, err := s.n.rpc.Status(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "consensus status: %v", err)
	}
	return &pb.NodeInfoResponse{
		ChainId:       s.n.chainID,
		Moniker:       st.NodeInfo.Moniker,
		Version:       app.Version,
		LatestHeight:  st.SyncInfo.LatestBlockHeight,
		LatestAppHash: st.SyncInfo.LatestAppHash,
		Issuers:       s.n.pipe.issuers(),
		IndexedHeight: s.n.idx.indexedHeight(),
		QueuedHashes:  s.n.pipe.queueDepth(),
		Problems:      append(s.n.pipe.live.problems(), s.n.upgradeProblems()...),
	}, nil
}

func (s *api) Broadcast(ctx context.Context, req *pb.BroadcastRequest) (*pb.BroadcastResponse, error) {
	if len(req.GetTx()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "tx: empty")
	}
	if len(req.Tx) > app.MaxTxBytes {
		return nil, status.Errorf(codes.InvalidArgument, "tx: %d bytes, limit %d", len(req.Tx), app.MaxTxBytes)
	}
	var tx pb.Tx
	if err := proto.Unmarshal(req.Tx, &tx); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "tx: not a Credence transaction: %v", err)
	}
	w := s.n.txWaits
	if err := w.reserve(); err != nil {
		return nil, status.Errorf(codes.ResourceExhausted, "broadcast: %v; retry later", err)
	}
	defer w.release()
	hash := sha256.Sum256(req.Tx)
	result, cancel := w.watch(hash)
	defer cancel()
	res, err := s.n.rpc.BroadcastTxSync(ctx, req.Tx)
	switch {
	case errors.Is(err, mempool.ErrTxInCache):
		// The very bytes were received before (pending or committed):
		// sending them again can never execute them twice.
		return nil, status.Errorf(codes.AlreadyExists, "tx %X: this exact transaction was already received; it executes at most once (sign a new one, with the next sequence, to act again)", hash)
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "broadcast: %v", err)
	}
	out := &pb.BroadcastResponse{TxHash: res.Hash}
	if res.Code != 0 {
		out.Code, out.Log = res.Code, res.Log
		return out, nil
	}
	timer := time.NewTimer(w.timeout)
	defer timer.Stop()
	select {
	case r := <-result:
		out.Code, out.Log, out.Height = r.res.Code, r.res.Log, r.height
		return out, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-timer.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "tx %X: accepted, but in no block within broadcast_timeout %s; it may still be: read the signer's sequence (GetSequence) before signing again", hash, w.timeout)
	}
}

func (s *api) proposal(id uint64) (*pb.GetProposalResponse, error) {
	s.proposalReads.Add(1)
	res, err := s.n.app.Query(context.Background(), &abci.RequestQuery{Path: "/key", Data: app.ProposalKey(id)})
	if err != nil {
		return nil, err
	}
	if res.Value == nil {
		return nil, nil
	}
	out := &pb.GetProposalResponse{Proposal: &pb.Proposal{}, Propose: &pb.Propose{}, Height: res.Height}
	if err := proto.Unmarshal(res.Value, out.Proposal); err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(out.Proposal.Propose, out.Propose); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *api) GetProposal(_ context.Context, req *pb.GetProposalRequest) (*pb.GetProposalResponse, error) {
	if req.GetId() == 0 {
		return nil, status.Error(codes.InvalidArgument, "id: proposal ids start at 1")
	}
	p, err := s.proposal(req.Id)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "proposal: %v", err)
	}
	if p == nil {
		return nil, status.Errorf(codes.NotFound, "no proposal %d", req.Id)
	}
	return p, nil
}

func (s *api) ListProposals(_ context.Context, req *pb.ListProposalsRequest) (*pb.ListProposalsResponse, error) {
	limit := req.GetLimit()
	if limit == 0 || limit > 100 {
		limit = 100
	}
	// Ids run from 1 to the next id less one, and proposals stay in state
	// once made: the newest limit are read by id, however many there are.
	res, err := s.n.app.Query(context.Background(), &abci.RequestQuery{Path: "/key", Data: []byte(proof.KeyNextProposal)})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "proposal: %v", err)
	}
	var next uint64 = 1
	if len(res.Value) == 8 {
		next = binary.BigEndian.Uint64(res.Value)
	}
	out := &pb.ListProposalsResponse{}
	for id := next - 1; id >= 1 && len(out.Proposals) < int(limit); id-- {
		p, err := s.proposal(id)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "proposal: %v", err)
		}
		if p == nil {
			return nil, status.Errorf(codes.Internal, "proposal %d is missing from state (next id %d)", id, next)
		}
		out.Proposals = append(out.Proposals, p)
	}
	return out, nil
}

// proveKey reads key in the state at height with its ICS23 proof
// (membership, or non-membership when absent).
func (s *api) proveKey(height int64, key []byte) (value, prf []byte, err error) {
	return s.readKey(height, key, true)
}

// readKey reads key in the state at height, with its proof when prove: a
// proof is built under the app's lock, so a read that only looks at the
// value goes without.
func (s *api) readKey(height int64, key []byte, prove bool) (value, prf []byte, err error) {
	res, err := s.n.app.Query(context.Background(), &abci.RequestQuery{Path: "/key", Data: key, Height: height, Prove: prove})
	if err != nil {
		return nil, nil, err
	}
	if res.Code != 0 || prove && (res.ProofOps == nil || len(res.ProofOps.Ops) != 1) {
		return nil, nil, fmt.Errorf("state at height %d: %s", height, res.Log)
	}
	if !prove {
		return res.Value, nil, nil
	}
	return res.Value, res.ProofOps.Ops[0].Data, nil
}

func (s *api) GetStatus(ctx context.Context, req *pb.GetStatusRequest) (*pb.GetStatusResponse, error) {
	if len(req.GetHash()) != proof.HashSize {
		return nil, status.Errorf(codes.InvalidArgument, "hash: %d bytes, want a 32-byte SHA-256", len(req.GetHash()))
	}
	if req.Issuer != "" && app.ValidID(req.Issuer) != nil {
		return nil, status.Errorf(codes.InvalidArgument, "issuer: %s is not a valid issuer id", quoted(req.Issuer))
	}
	r, err := s.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: req.Hash, Issuer: req.Issuer})
	if err != nil {
		return nil, err
	}
	// The receipt's own header is committed, so its state is provable
	// even while the app is a block behind the block store.
	height, hdr, links, err := s.provenState(ctx, r.Receipt.Batch.Height)
	if err != nil {
		return nil, err
	}
	issuer := r.Receipt.Batch.Issuer
	rec, recProof, err := s.proveKey(height, proof.IssuerKey(issuer))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "issuer record: %v", err)
	}
	rev, revProof, err := s.proveKey(height, proof.RevocationKey(issuer, req.Hash))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "revocation: %v", err)
	}
	return &pb.GetStatusResponse{Status: &proof.Status{
		Version: proof.StatusVersion, Receipt: r.Receipt, Height: height,
		SignedHeader: hdr.signedHeader, Validators: hdr.validators, ValidatorLinks: links,
		IssuerRecord: rec, IssuerProof: recProof, Revocation: rev, RevocationProof: revProof,
	}}, nil
}

func (s *api) GetIssuer(_ context.Context, req *pb.GetIssuerRequest) (*pb.GetIssuerResponse, error) {
	if app.ValidID(req.GetId()) != nil {
		return nil, status.Errorf(codes.InvalidArgument, "id: %s is not a valid issuer id", quoted(req.GetId()))
	}
	res, err := s.n.app.Query(context.Background(), &abci.RequestQuery{Path: "/key", Data: proof.IssuerKey(req.Id)})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "issuer: %v", err)
	}
	if res.Value == nil {
		return nil, status.Errorf(codes.NotFound, "no issuer %q", req.Id)
	}
	var is pb.Issuer
	if err := proto.Unmarshal(res.Value, &is); err != nil {
		return nil, status.Errorf(codes.Internal, "issuer: %v", err)
	}
	return &pb.GetIssuerResponse{Issuer: &is, Height: res.Height}, nil
}

// provenState is the newest state a committed header proves, and at least
// atLeast, with that header and the validator links to it. The app hash of
// height H is in header H+1, whose canonical commit is in block H+2: the
// newest provable state is two below the last committed height.
func (s *api) provenState(ctx context.Context, atLeast int64) (int64, *headerEntry, []*proof.ValidatorSetLink, error) {
	height := max(s.n.app.Height()-2, atLeast)
	if height < 1 {
		return 0, nil, nil, status.Error(codes.Unavailable, "the chain has no provable state yet")
	}
	hdr, err := s.n.receipts.header(ctx, height+1)
	if err != nil {
		return 0, nil, nil, status.Errorf(codes.Unavailable, "header %d: %v", height+1, err)
	}
	_, links, err := s.n.receipts.links(ctx, height+1)
	if err != nil {
		return 0, nil, nil, status.Errorf(codes.Internal, "validator links: %v", err)
	}
	return height, hdr, links, nil
}

func (s *api) statusListArgs(issuer, id string) error {
	if app.ValidID(issuer) != nil {
		return status.Errorf(codes.InvalidArgument, "issuer: %s is not a valid issuer id", quoted(issuer))
	}
	if app.ValidID(id) != nil {
		return status.Errorf(codes.InvalidArgument, "id: %s is not a valid status list id", quoted(id))
	}
	return nil
}

// statusListAt reads a status list's record at height, decoded and as stored,
// with its proof when prove.
func (s *api) statusListAt(height int64, issuer, id string, prove bool) (*pb.Registry, []byte, []byte, error) {
	rec, recProof, err := s.readKey(height, proof.RegistryKey(issuer, id), prove)
	if err != nil {
		return nil, nil, nil, status.Errorf(codes.Internal, "status list: %v", err)
	}
	if rec == nil {
		return nil, nil, nil, status.Errorf(codes.NotFound, "issuer %q has no status list %q (as of height %d)", issuer, id, height)
	}
	var r pb.Registry
	if err := proto.Unmarshal(rec, &r); err != nil {
		return nil, nil, nil, status.Errorf(codes.Internal, "status list: %v", err)
	}
	return &r, rec, recProof, nil
}

func (s *api) GetRegistryStatus(ctx context.Context, req *pb.GetRegistryStatusRequest) (*pb.GetRegistryStatusResponse, error) {
	if err := s.statusListArgs(req.GetIssuer(), req.GetId()); err != nil {
		return nil, err
	}
	height, hdr, links, err := s.provenState(ctx, 0)
	if err != nil {
		return nil, err
	}
	r, rec, recProof, err := s.statusListAt(height, req.Issuer, req.Id, true)
	if err != nil {
		return nil, err
	}
	if req.Index >= r.Size {
		return nil, status.Errorf(codes.InvalidArgument, "index: %d is outside the status list's %d entries", req.Index, r.Size)
	}
	chunk, chunkProof, err := s.proveKey(height, proof.ChunkKey(req.Issuer, req.Id, uint32(req.Index/proof.ChunkBits)))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "chunk: %v", err)
	}
	return &pb.GetRegistryStatusResponse{Status: &proof.RegistryStatus{
		Version: proof.StatusVersion, ChainId: s.n.chainID, Index: req.Index, Height: height,
		SignedHeader: hdr.signedHeader, Validators: hdr.validators, ValidatorLinks: links,
		RegistryRecord: rec, RegistryProof: recProof, Chunk: chunk, ChunkProof: chunkProof,
	}}, nil
}

func (s *api) ExportRegistry(ctx context.Context, req *pb.ExportRegistryRequest) (*pb.ExportRegistryResponse, error) {
	if err := s.statusListArgs(req.GetIssuer(), req.GetId()); err != nil {
		return nil, err
	}
	// exportStatusListAt reads the header and links itself.
	height, err := s.n.newestProvable()
	if err != nil {
		return nil, err
	}
	// statuslist.go: the same export serves ?height= of a status list.
	ex, _, _, err := s.exportStatusListAt(ctx, height, req.Issuer, req.Id)
	if err != nil {
		return nil, err
	}
	return &pb.ExportRegistryResponse{Export: ex}, nil
}

func (s *api) GetSequence(_ context.Context, req *pb.GetSequenceRequest) (*pb.GetSequenceResponse, error) {
	if err := app.ValidID(req.GetId()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "id: %s is not a valid account id", quoted(req.GetId()))
	}
	var key []byte
	switch req.Kind {
	case pb.AccountKind_ACCOUNT_KIND_ISSUER:
		key = proof.IssuerSequenceKey(req.Id)
	case pb.AccountKind_ACCOUNT_KIND_MEMBER:
		key = proof.MemberSequenceKey(req.Id)
	default:
		return nil, status.Error(codes.InvalidArgument, "kind: say ACCOUNT_KIND_ISSUER or ACCOUNT_KIND_MEMBER")
	}
	height := s.n.app.Height()
	next, err := s.n.app.NextSequence(key)
	switch {
	case errors.Is(err, app.ErrRejected):
		return nil, status.Errorf(codes.FailedPrecondition, "account %s: %v", req.Id, err)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "sequence: %v", err)
	}
	return &pb.GetSequenceResponse{NextSequence: next, Height: height}, nil
}
