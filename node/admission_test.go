package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Admission before work: a request, a connection or a stream is refused
// before the node spends memory or a slot on it, and no one source can
// take every slot from the others.

// endlessBody is a request body the test controls: a Submit's JSON whose
// hashes never end, counting what the client took of it.
type endlessBody struct {
	limit int64
	read  atomic.Int64
}

func (b *endlessBody) Read(p []byte) (int, error) {
	done := b.read.Load()
	if done >= b.limit {
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.limit-done)
	for i := range p[:n] {
		p[i] = 'A'
	}
	if done == 0 {
		n = int64(copy(p, `{"hashes":"`))
	}
	b.read.Add(n)
	return int(n), nil
}

// postBody sends body to addr's path over a connection of its own and
// returns the answer. Chunked, the body is written while the answer is
// read, as a client streaming a large upload does; declared, its length is
// sent with "Expect: 100-continue" and the body only if the server asks
// for it. Write errors are ignored: a server that answers early and closes
// cuts the upload short, which is the point.
func postBody(t *testing.T, addr, path string, body io.Reader, length int64, header map[string]string) httpAnswer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	br := bufio.NewReader(conn)
	var res *http.Response
	if length < 0 {
		req, err := http.NewRequest("POST", "http://"+addr+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		for k, v := range header {
			req.Header.Set(k, v)
		}
		go req.Write(conn)
		res, err = http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
	} else {
		var hdr strings.Builder
		fmt.Fprintf(&hdr, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n", path, addr, length)
		for k, v := range header {
			fmt.Fprintf(&hdr, "%s: %s\r\n", k, v)
		}
		hdr.WriteString("\r\n")
		if _, err := io.WriteString(conn, hdr.String()); err != nil {
			t.Fatal(err)
		}
		for {
			res, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			if res.StatusCode != http.StatusContinue {
				break
			}
			go io.Copy(conn, body)
		}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return httpAnswer{res.StatusCode, res.Header, b}
}

func TestHTTPAdmission(t *testing.T) {
	// Serial: it counts refusals in the process-wide HTTP metrics, which
	// every other node in the process adds to.
	h := newTestHome(t)
	const maxBody = 1 << 20
	h.configure(t, func(c *config) { c.MaxHTTPBodyBytes = maxBody })
	n := h.start(t)
	t.Cleanup(func() { n.Stop() })
	base := "http://" + n.HTTPAddr()
	token := map[string]string{"Authorization": "Bearer " + h.token}

	// The client's socket buffers take some megabytes before the server's
	// answer stops the upload; 64 MiB is what the node would read whole.
	const sent, bound = 64 << 20, 24 << 20
	t.Run("a write's token is checked before its body is read", func(t *testing.T) {
		for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer wrong"}} {
			body := &endlessBody{limit: sent}
			a := postBody(t, n.HTTPAddr(), "/v1/submit", body, -1, hdr)
			if got := body.read.Load(); got >= bound {
				t.Fatalf("the node took %d bytes of a body without a valid token", got)
			}
			wantHTTPError(t, a, 401, codes.Unauthenticated, "")
		}
	})
	t.Run("a chunked body over the bound is refused 413 as it is read", func(t *testing.T) {
		body := &endlessBody{limit: sent}
		a := postBody(t, n.HTTPAddr(), "/v1/submit", body, -1, token)
		if got := body.read.Load(); got >= bound {
			t.Fatalf("the node took %d bytes of a body bounded to %d", got, maxBody)
		}
		wantHTTPError(t, a, 413, codes.ResourceExhausted, "max_http_body_bytes")
	})
	t.Run("a declared length over the bound is refused 413 unread", func(t *testing.T) {
		body := &endlessBody{limit: sent}
		a := postBody(t, n.HTTPAddr(), "/v1/submit", body, sent, token)
		if got := body.read.Load(); got != 0 {
			t.Fatalf("the node took %d bytes of a body declared over the bound", got)
		}
		wantHTTPError(t, a, 413, codes.ResourceExhausted, "max_http_body_bytes")
	})
	t.Run("a body within the bound is served", func(t *testing.T) {
		a := httpDo(t, "POST", base+"/v1/submit", `{"hashes":"`+strings.Repeat("A", 43)+`="}`, token)
		if a.code != 200 {
			t.Fatalf("%d %s", a.code, a.body)
		}
	})
	t.Run("path or query not UTF-8 is InvalidArgument", func(t *testing.T) {
		served500, served400 := httpCount(t, "500"), httpCount(t, "400")
		defer func() {
			if httpCount(t, "500") != served500 || httpCount(t, "400") != served400+5 {
				t.Errorf("metrics count the refusals as 500 (%v more) or not as 400 (%v more of 5)",
					httpCount(t, "500")-served500, httpCount(t, "400")-served400)
			}
		}()
		hash := strings.Repeat("ab", 32)
		for _, path := range []string{
			"/v1/issuers/%FF%FE",
			"/v1/receipts/" + hash + "?issuer=%FF",
			"/v1/statuslists/%C3%28/list",
			"/receipts/" + hash + ".json?issuer=%FF",
			"/v1/node?%FF=1",
		} {
			wantHTTPError(t, httpDo(t, "GET", base+path, "", nil), 400, codes.InvalidArgument, "UTF-8")
		}
	})
	t.Run("a method the route does not serve is 405 with Allow", func(t *testing.T) {
		for path, allow := range map[string]string{"/v1/node": "GET, HEAD", "/v1/submit": "POST"} {
			for _, m := range []string{"PUT", "DELETE", "PATCH"} {
				a := httpDo(t, m, base+path, "", token)
				wantHTTPError(t, a, 405, codes.Unimplemented, "not allowed")
				if a.header.Get("Allow") != allow {
					t.Fatalf("%s %s: Allow %q, want %q", m, path, a.header.Get("Allow"), allow)
				}
			}
		}
		a := httpDo(t, "GET", base+"/v1/submit", "", nil)
		wantHTTPError(t, a, 405, codes.Unimplemented, "not allowed")
	})
	t.Run("HEAD is served as GET without a body", func(t *testing.T) {
		for _, path := range []string{"/v1/node", "/openapi.json", "/genesis.json"} {
			a := httpDo(t, "HEAD", base+path, "", nil)
			if a.code != 200 || len(a.body) != 0 || a.header.Get("Content-Type") != "application/json" {
				t.Fatalf("HEAD %s: %d %q %s", path, a.code, a.header.Get("Content-Type"), a.body)
			}
		}
	})
}

// httpCount is the HTTP requests answered with code, by the metrics.
func httpCount(t *testing.T, code string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "credence_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && l.GetValue() == code {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// from dials from one loopback source address: Linux routes all of
// 127/8 to lo, so each 127.0.0.x is a source of its own.
func from(ip string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
}

// silentConns opens n connections from ip that never speak.
func silentConns(t *testing.T, ip, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := from(ip).Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	return conns
}

// closedByServer reports whether the server closed c (within a bound far
// over what closing takes, so a slot kept open is told apart).
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err := io.ReadAll(c)
	return err == nil || !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func dialFrom(t *testing.T, ip, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return from(ip).DialContext(ctx, "tcp", a)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// servedFrom reports whether a call from ip is answered, waiting for a slot
// up to a bound far over what a call takes.
func servedFrom(t *testing.T, ip, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := pb.NewCredenceClient(dialFrom(t, ip, addr)).NodeInfo(ctx, &pb.NodeInfoRequest{}, grpc.WaitForReady(true))
	return err
}

// waitReleased waits until the server has closed its side of every
// connection the test closed, so that the next step starts with the slots
// free.
func waitReleased(t *testing.T, lis net.Listener, sources ...string) {
	t.Helper()
	l := lis.(*sourceListener)
	for range 400 {
		held := 0
		l.mu.Lock()
		for _, src := range sources {
			held += l.bySource[src]
		}
		l.mu.Unlock()
		if held == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the server kept connections the client closed")
}

// TestConnectionSlotsPerSource: one source holding connections and streams
// up to every node-wide slot leaves others served: it gets only its share.
// The HTTP gateway needs no public slot at all.
func TestConnectionSlotsPerSource(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	h.configure(t, func(c *config) {
		c.MaxConnections = 4
		c.MaxConnectionsPerSource = 2
		c.MaxOpenStreams = 4
		c.MaxStreamsPerSource = 2
		// Silent connections keep their slots for the whole test.
		c.HandshakeTimeout = duration{10 * time.Minute}
	})
	n := h.start(t)
	t.Cleanup(func() { n.Stop() })

	// First, before the gateway has ever connected.
	t.Run("the gateway is served while the gRPC slots are full", func(t *testing.T) {
		a := silentConns(t, "127.0.0.2", n.GRPCAddr(), 2)
		b := silentConns(t, "127.0.0.4", n.GRPCAddr(), 2)
		client := &http.Client{Timeout: 20 * time.Second}
		res, err := client.Get("http://" + n.HTTPAddr() + "/v1/node")
		if err != nil {
			t.Fatalf("HTTP with every gRPC slot taken: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("HTTP %d", res.StatusCode)
		}
		for _, c := range append(a, b...) {
			c.Close()
		}
		waitReleased(t, n.lis, "127.0.0.2", "127.0.0.4")
	})
	t.Run("gRPC: a source past its share is closed, others are served", func(t *testing.T) {
		conns := silentConns(t, "127.0.0.2", n.GRPCAddr(), 4)
		refused := 0
		for _, c := range conns[2:] {
			if closedByServer(c) {
				refused++
			}
		}
		if refused != 2 {
			t.Fatalf("%d of the source's connections past its share of 2 were closed, want 2", refused)
		}
		if err := servedFrom(t, "127.0.0.3", n.GRPCAddr()); err != nil {
			t.Fatalf("another source was not served: %v", err)
		}
		for _, c := range conns {
			c.Close()
		}
		waitReleased(t, n.lis, "127.0.0.2", "127.0.0.4")
	})
	t.Run("streams: a source past its share is refused, others are served", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		watch := func(conn *grpc.ClientConn) error {
			w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
			if err == nil {
				_, err = w.Recv()
			}
			return err
		}
		conn := dialFrom(t, "127.0.0.2", n.GRPCAddr())
		held := 0
		for range 4 {
			err := watch(conn)
			if err == nil {
				held++
				continue
			}
			wantCode(t, err, codes.ResourceExhausted, "max_streams_per_source")
		}
		if held != 2 {
			t.Fatalf("the source holds %d streams, want its share of 2", held)
		}
		if err := watch(dialFrom(t, "127.0.0.3", n.GRPCAddr())); err != nil {
			t.Fatalf("another source's stream was refused: %v", err)
		}
	})
	t.Run("HTTP: a source past its share is closed, others are served", func(t *testing.T) {
		conns := silentConns(t, "127.0.0.2", n.HTTPAddr(), 4)
		refused := 0
		for _, c := range conns[2:] {
			if closedByServer(c) {
				refused++
			}
		}
		if refused != 2 {
			t.Fatalf("%d of the source's connections past its share of 2 were closed, want 2", refused)
		}
		tr := &http.Transport{DialContext: from("127.0.0.3").DialContext}
		defer tr.CloseIdleConnections()
		res, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get("http://" + n.HTTPAddr() + "/v1/node")
		if err != nil {
			t.Fatalf("another source was not served: %v", err)
		}
		res.Body.Close()
	})
}

// TestIdleKeepAliveGivesWay: keep-alive connections left idle, from
// sources each within its share, do not keep a new client waiting while
// they fill every slot: the oldest idle one is closed to make room.
func TestIdleKeepAliveGivesWay(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	h.configure(t, func(c *config) {
		c.MaxConnections = 4
		c.MaxConnectionsPerSource = 2
	})
	n := h.start(t)
	t.Cleanup(func() { n.Stop() })
	url := "http://" + n.HTTPAddr() + "/v1/node"
	get := func(ip string) error {
		// A transport of its own: each keeps its connection open.
		tr := &http.Transport{DialContext: from(ip).DialContext}
		t.Cleanup(tr.CloseIdleConnections)
		res, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get(url)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		_, err = io.ReadAll(res.Body)
		return err
	}
	for _, ip := range []string{"127.0.0.5", "127.0.0.5", "127.0.0.6", "127.0.0.6"} {
		if err := get(ip); err != nil {
			t.Fatal(err)
		}
	}
	if err := get("127.0.0.7"); err != nil {
		t.Fatalf("idle keep-alive connections in every slot kept a new client out: %v", err)
	}
}

// TestIdleStreamAges: a connection kept busy by a stream that never sends
// is still asked to go once max_connection_age (and its grace) pass, so a
// silent stream cannot hold a slot forever.
func TestIdleStreamAges(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	h.configure(t, func(c *config) {
		c.MaxConnectionAge = duration{time.Second}
		c.MaxConnectionAgeGrace = duration{time.Second}
	})
	n := h.start(t)
	t.Cleanup(func() { n.Stop() })
	// Far over age and grace: the stream lasts forever unless ended.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := healthpb.NewHealthClient(dialFrom(t, "127.0.0.2", n.GRPCAddr())).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	_, err = w.Recv()
	if ctx.Err() != nil || status.Code(err) == codes.OK {
		t.Fatalf("the silent stream was not ended by max_connection_age: %v", err)
	}
}

// TestAdmissionConfigBounds: the admission settings refuse values that
// would refuse everyone or bound nothing.
func TestAdmissionConfigBounds(t *testing.T) {
	t.Parallel()
	for name, edit := range map[string]func(*config){
		"max_connections_per_source": func(c *config) { c.MaxConnectionsPerSource = 0 },
		"max_streams_per_source":     func(c *config) { c.MaxStreamsPerSource = 0 },
		"max_connection_age":         func(c *config) { c.MaxConnectionAge = duration{} },
		"max_connection_age_grace":   func(c *config) { c.MaxConnectionAgeGrace = duration{-time.Second} },
		"max_http_body_bytes":        func(c *config) { c.MaxHTTPBodyBytes = 0 },
	} {
		c := defaultConfig()
		edit(c)
		if err := c.checkLimits(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := defaultConfig().checkLimits(); err != nil {
		t.Fatal(err)
	}
}
