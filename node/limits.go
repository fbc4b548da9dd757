package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/peer"
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
	case c.MaxConnectionsPerSource < 1:
		return errors.New("max_connections_per_source must be at least 1")
	case c.MaxStreamsPerSource < 1:
		return errors.New("max_streams_per_source must be at least 1")
	case c.MaxConnectionAge.Duration <= 0 || c.MaxConnectionAgeGrace.Duration <= 0:
		return errors.New("max_connection_age and max_connection_age_grace must be positive")
	case c.MaxHTTPBodyBytes < 1:
		return errors.New("max_http_body_bytes must be at least 1")
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

// listenAPI opens the API listener, holding at most max_connections open,
// max_connections_per_source of them from one source.
func listenAPI(c *config) (net.Listener, error) {
	lis, err := net.Listen("tcp", c.GRPCAddress)
	if err != nil {
		return nil, fmt.Errorf("gRPC listen on %s: %w", c.GRPCAddress, err)
	}
	return newSourceListener(lis, c.MaxConnections, c.MaxConnectionsPerSource), nil
}

// sourceListener holds at most max connections open, as
// netutil.LimitListener does (more wait in the kernel's backlog), and at
// most perSource from one source: a connection over its source's share is
// closed as soon as it is accepted, so that one source, however many
// connections it opens and keeps silent, leaves the other slots to others.
type sourceListener struct {
	net.Listener
	slots     chan struct{}
	perSource int
	done      chan struct{}
	closeOnce sync.Once

	// evict, when set, closes an idle connection to make room for a new
	// one (the HTTP listener's keep-alive connections).
	evict func()

	mu       sync.Mutex
	bySource map[string]int // sources with a connection open; bounded by max
}

// idleConns are the HTTP connections idle between requests, which the
// HTTP listener closes, oldest first, rather than keep a new client waiting.
type idleConns struct {
	mu    sync.Mutex
	since map[net.Conn]time.Time // bounded by max_connections
}

func newIdleConns() *idleConns { return &idleConns{since: make(map[net.Conn]time.Time)} }

// track is the HTTP server's ConnState hook.
func (ic *idleConns) track(c net.Conn, s http.ConnState) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if s == http.StateIdle {
		ic.since[c] = time.Now()
	} else {
		delete(ic.since, c)
	}
}

func (ic *idleConns) evictOldest() {
	ic.mu.Lock()
	var oldest net.Conn
	var at time.Time
	for c, t := range ic.since {
		if oldest == nil || t.Before(at) {
			oldest, at = c, t
		}
	}
	delete(ic.since, oldest)
	ic.mu.Unlock()
	if oldest != nil {
		oldest.Close()
	}
}

func newSourceListener(l net.Listener, max, perSource int) *sourceListener {
	return &sourceListener{Listener: l, slots: make(chan struct{}, max), perSource: perSource,
		done: make(chan struct{}), bySource: make(map[string]int)}
}

func (l *sourceListener) Accept() (net.Conn, error) {
	for {
		c, src, err := l.next()
		if err != nil {
			return nil, err
		}
		if c != nil {
			return &sourceConn{Conn: c, l: l, src: src}, nil
		}
	}
}

// next takes a slot and a connection within its source's share; it gives
// no connection when the one accepted was over its source's share.
func (l *sourceListener) next() (net.Conn, string, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, "", net.ErrClosed
	default:
		if l.evict != nil {
			// Full: take the next connection, then make room for it by
			// closing an idle one, so that idle keep-alive connections
			// never keep a new client waiting.
			c, err := l.Listener.Accept()
			if err != nil {
				return nil, "", err
			}
			src, ok := l.admitSource(c)
			if !ok {
				return nil, "", nil
			}
			l.evict()
			select {
			case l.slots <- struct{}{}:
				return c, src, nil
			case <-l.done:
				c.Close()
				l.releaseSource(src)
				return nil, "", net.ErrClosed
			}
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, "", net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, "", err
	}
	src, ok := l.admitSource(c)
	if !ok {
		<-l.slots
		return nil, "", nil
	}
	return c, src, nil
}

// admitSource counts c against its source, or closes it when the source
// holds its share.
func (l *sourceListener) admitSource(c net.Conn) (string, bool) {
	src := sourceOf(c.RemoteAddr())
	l.mu.Lock()
	full := l.bySource[src] >= l.perSource
	if !full {
		l.bySource[src]++
	}
	l.mu.Unlock()
	if full {
		c.Close()
		metricConnectionsRefused.Inc()
	}
	return src, !full
}

func (l *sourceListener) releaseSource(src string) {
	l.mu.Lock()
	if l.bySource[src]--; l.bySource[src] <= 0 {
		delete(l.bySource, src)
	}
	l.mu.Unlock()
}

func (l *sourceListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *sourceListener) release(src string) {
	l.releaseSource(src)
	<-l.slots
}

var metricConnectionsRefused = promauto.NewCounter(prometheus.CounterOpts{
	Namespace: "credence", Name: "connections_refused_total",
	Help: "API and HTTP connections closed at once because their source held max_connections_per_source."})

type sourceConn struct {
	net.Conn
	l       *sourceListener
	src     string
	release sync.Once
}

func (c *sourceConn) Close() error {
	err := c.Conn.Close()
	c.release.Do(func() { c.l.release(c.src) })
	return err
}

// sourceOf is the source a connection is counted against: its IP, or for
// IPv6 its /64, the block one host is usually given. Connections that are
// not TCP (the gateway's, in process) share one source.
func sourceOf(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.Network()
	}
	if ip4 := tcp.IP.To4(); ip4 != nil {
		return ip4.String()
	}
	return tcp.IP.Mask(net.CIDRMask(64, 128)).String()
}

// apiServerOptions are the gRPC server's limits and interceptors.
func apiServerOptions(c *config) []grpc.ServerOption {
	l := &limiter{
		perConn:   rate.Limit(c.ConnectionRate),
		streams:   make(chan struct{}, c.MaxOpenStreams),
		perSource: c.MaxStreamsPerSource,
		bySource:  make(map[string]int),
	}
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(apiMaxRecv),
		grpc.MaxConcurrentStreams(c.MaxStreamsPerConnection),
		grpc.ConnectionTimeout(c.HandshakeTimeout.Duration),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: c.IdleTimeout.Duration,
			// A stream keeps its connection from ever being idle; age
			// ends it all the same (the client reconnects).
			MaxConnectionAge:      c.MaxConnectionAge.Duration,
			MaxConnectionAgeGrace: c.MaxConnectionAgeGrace.Duration,
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

// apiMaxRecv bounds one gRPC request (and what the HTTP gateway sends).
const apiMaxRecv = 8 << 20

// limiter is the per-connection rate limit (a token bucket made when the
// connection opens and dropped with it) and the bounds on open streams, on
// the whole node and per source.
type limiter struct {
	perConn rate.Limit
	streams chan struct{}

	perSource int
	mu        sync.Mutex
	bySource  map[string]int // sources with a stream open; bounded by max_open_streams
}

// holdStream takes one of the node's stream slots and one of src's; done
// gives them back.
func (l *limiter) holdStream(src string) (done func(), err error) {
	l.mu.Lock()
	if l.bySource[src] >= l.perSource {
		l.mu.Unlock()
		return nil, status.Errorf(codes.ResourceExhausted, "this source (%s) has %d streams open, its limit (max_streams_per_source); try again later", src, l.perSource)
	}
	l.bySource[src]++
	l.mu.Unlock()
	undo := func() {
		l.mu.Lock()
		if l.bySource[src]--; l.bySource[src] <= 0 {
			delete(l.bySource, src)
		}
		l.mu.Unlock()
	}
	select {
	case l.streams <- struct{}{}:
		return func() { <-l.streams; undo() }, nil
	default:
		undo()
		return nil, status.Errorf(codes.ResourceExhausted, "the node has %d streams open, its limit (max_open_streams); try again later", cap(l.streams))
	}
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
	src := "unknown"
	if p, ok := peer.FromContext(ss.Context()); ok && p.Addr != nil {
		src = sourceOf(p.Addr)
	}
	done, err := l.holdStream(src)
	if err != nil {
		return err
	}
	defer done()
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
