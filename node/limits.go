package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The API is open to anyone who can reach it for reads, so every resource a
// client can hold is bounded: connections, streams per connection, open
// streams per node, calls per second per connection and per token, and how
// long a silent or half-open connection may stay.

func (c *config) checkLimits() error {
	switch {
	case c.MaxConnections < 1:
		return errors.New("max_connections must be at least 1")
	case c.MaxStreamsPerConnection < 1:
		return errors.New("max_streams_per_connection must be at least 1")
	case c.MaxOpenStreams < 1:
		return errors.New("max_open_streams must be at least 1")
	case c.ConnectionRate < 1:
		return errors.New("connection_rate must be at least 1")
	case c.TokenRate < 1:
		return errors.New("token_rate must be at least 1")
	case c.HandshakeTimeout.Duration <= 0:
		return errors.New("handshake_timeout must be positive")
	case c.IdleTimeout.Duration <= 0:
		return errors.New("idle_timeout must be positive")
	case c.KeepaliveMinInterval.Duration <= 0:
		return errors.New("keepalive_min_interval must be positive")
	case c.MaxKnownListed < 0:
		return errors.New("max_known_listed must not be negative")
	}
	return nil
}

// listenAPI opens the API listener, holding at most max_connections open.
func listenAPI(c *config) (net.Listener, error) {
	lis, err := net.Listen("tcp", c.GRPCAddress)
	if err != nil {
		return nil, fmt.Errorf("gRPC listen on %s: %w", c.GRPCAddress, err)
	}
	return netutil.LimitListener(lis, c.MaxConnections), nil
}

// apiServerOptions are the gRPC server's limits and interceptors.
func apiServerOptions(c *config) []grpc.ServerOption {
	l := &limiter{
		perConn: rate.Limit(c.ConnectionRate),
		streams: make(chan struct{}, c.MaxOpenStreams),
	}
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(8 << 20),
		grpc.MaxConcurrentStreams(c.MaxStreamsPerConnection),
		grpc.ConnectionTimeout(c.HandshakeTimeout.Duration),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: c.IdleTimeout.Duration,
			// Probe a silent peer so a vanished client's connection closes.
			Time:    time.Minute,
			Timeout: 20 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: c.KeepaliveMinInterval.Duration}),
		grpc.StatsHandler(l),
		grpc.ForceServerCodecV2(strictCodec{}),
		// Metrics first, so that calls the limits refuse are counted too.
		grpc.ChainUnaryInterceptor(grpcMetrics.UnaryServerInterceptor(), l.unary),
		grpc.ChainStreamInterceptor(grpcMetrics.StreamServerInterceptor(), l.stream),
	}
}

// limiter is the per-connection rate limit (a token bucket made when the
// connection opens and dropped with it) and the node-wide bound on open
// streams.
type limiter struct {
	perConn rate.Limit
	streams chan struct{}
}

type connLimitKey struct{}

func (l *limiter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connLimitKey{}, rate.NewLimiter(l.perConn, 2*int(l.perConn)))
}
func (l *limiter) HandleConn(context.Context, stats.ConnStats) {}
func (l *limiter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (l *limiter) HandleRPC(context.Context, stats.RPCStats) {}

var errConnRate = status.Error(codes.ResourceExhausted, "too many calls on this connection; slow down (connection_rate)")

func allowCall(ctx context.Context) error {
	if lim, ok := ctx.Value(connLimitKey{}).(*rate.Limiter); ok && !lim.Allow() {
		return errConnRate
	}
	return nil
}

func (l *limiter) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if err := decodeFailure(req); err != nil {
		return nil, err
	}
	if err := allowCall(ctx); err != nil {
		return nil, err
	}
	return next(ctx, req)
}

func (l *limiter) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if err := allowCall(ss.Context()); err != nil {
		return err
	}
	select {
	case l.streams <- struct{}{}:
		defer func() { <-l.streams }()
	default:
		return status.Errorf(codes.ResourceExhausted, "the node has %d streams open, its limit (max_open_streams); try again later", cap(l.streams))
	}
	return next(srv, &limitedStream{ServerStream: ss})
}

// limitedStream counts each received message against the connection's rate
// and turns a message that did not decode into InvalidArgument.
type limitedStream struct{ grpc.ServerStream }

func (s *limitedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := decodeFailure(m); err != nil {
		return err
	}
	return allowCall(s.Context())
}

// tokenLimits is one rate limit per issuer token, for writes.
type tokenLimits struct {
	rate rate.Limit
	mu   sync.Mutex
	byID map[string]*rate.Limiter // bounded by the configured issuers
}

func newTokenLimits(perSecond int) *tokenLimits {
	return &tokenLimits{rate: rate.Limit(perSecond), byID: make(map[string]*rate.Limiter)}
}

func (t *tokenLimits) allow(issuer string) error {
	t.mu.Lock()
	lim, ok := t.byID[issuer]
	if !ok {
		lim = rate.NewLimiter(t.rate, 2*int(t.rate))
		t.byID[issuer] = lim
	}
	t.mu.Unlock()
	if !lim.Allow() {
		return status.Errorf(codes.ResourceExhausted, "too many writes for issuer %q; slow down (token_rate)", issuer)
	}
	return nil
}

// strictCodec is the proto codec, except that a request that does not
// decode (malformed wire bytes, invalid UTF-8 in a string) is answered
// InvalidArgument: gRPC itself reports every codec error as Internal, which
// tells a client the fault is the server's. The failure is parked beside the
// message and picked up by the interceptors, which every call passes.
type strictCodec struct{}

var decodeFailures sync.Map // message pointer → error

func (strictCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("cannot encode %T", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (strictCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("cannot decode into %T", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	if err := proto.Unmarshal(buf.ReadOnlyData(), m); err != nil {
		proto.Reset(m)
		decodeFailures.Store(m, err)
	}
	return nil
}

func (strictCodec) Name() string { return "proto" }

var _ encoding.CodecV2 = strictCodec{}

func decodeFailure(m any) error {
	if err, ok := decodeFailures.LoadAndDelete(m); ok {
		return status.Errorf(codes.InvalidArgument, "request does not decode as %T: %v", m, err)
	}
	return nil
}
