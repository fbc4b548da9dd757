package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// The HTTP face of a node: the JSON gateway generated from the proto files
// (proto/credence/v1/api_http.yaml), and the documents a verifier's page
// fetches as files. Every call goes through the node's own gRPC server, so
// that authentication, limits and error codes are those of gRPC; it reaches
// it in process, not through one of the listener's connection slots, which
// clients could otherwise all take.
//
// A request is admitted (admit) before any work is done for it: its path
// and query must be UTF-8, its method one its route serves, a write's token
// known, and its body within max_http_body_bytes, all before the body is
// read.

// openAPIJSON describes every route; it is generated (openapi_gen_test.go,
// go test -tags badgerdb -run TestOpenAPIDocument ./node -update)
// and is also the table admit reads the routes' methods and tokens from.
//
//go:embed openapi/credence.openapi.json
var openAPIJSON []byte

// gatewayMaxRecv bounds one gRPC answer relayed over HTTP; the export of
// the largest status list is the biggest.
const gatewayMaxRecv = 64 << 20

// gatewayBuffer is the in-process connection's buffer each way.
const gatewayBuffer = 1 << 20

var (
	httpRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "credence", Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests by route, method and status code."}, []string{"route", "method", "code"})
	httpDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "credence", Subsystem: "http", Name: "request_duration_seconds",
		Help: "HTTP request latency by route and method.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)},
		[]string{"route", "method"})
)

// instrument counts and times a route's requests under its pattern.
func instrument(route string, h http.Handler) http.Handler {
	l := prometheus.Labels{"route": route}
	return promhttp.InstrumentHandlerCounter(httpRequests.MustCurryWith(l),
		promhttp.InstrumentHandlerDuration(httpDuration.MustCurryWith(l), h))
}

// startHTTP serves the gateway on cfg.HTTPAddress until stopHTTP.
func (n *Node) startHTTP(cfg *config, home string, genesis []byte) error {
	if cfg.HTTPAddress == "" {
		return nil
	}
	creds := insecure.NewCredentials()
	var serverTLS *tls.Config
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(inConfigDir(home, cfg.TLSCertFile), inConfigDir(home, cfg.TLSKeyFile))
		if err != nil {
			return fmt.Errorf("HTTP TLS: %w", err)
		}
		serverTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		creds = credentials.NewTLS(pinnedTLS(cert.Certificate[0]))
	}
	routes, err := parseRoutes(openAPIJSON)
	if err != nil {
		return err
	}
	inproc := bufconn.Listen(gatewayBuffer)
	go func() {
		if err := n.grpc.Serve(inproc); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("gRPC server for the gateway stopped", "err", err)
		}
	}()
	conn, err := grpc.NewClient("passthrough:///credence-in-process", grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return inproc.DialContext(ctx) }),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(gatewayMaxRecv), grpc.MaxCallSendMsgSize(apiMaxRecv)))
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	n.gatewayConn = conn
	client := pb.NewCredenceClient(conn)

	marshaler := &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true}}
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
			// The gateway reports a body cut off at the bound as one that
			// did not decode.
			if b, ok := r.Body.(*boundedBody); ok && b.over {
				writeTooLarge(w, b.max)
				return
			}
			writeError(w, err)
		}),
		runtime.WithRoutingErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
			// admit answers a method the route does not serve (405).
			writeError(w, status.Errorf(codes.NotFound, "%s %s: no such route; the routes are listed at /openapi.json", r.Method, r.URL.Path))
		}),
		runtime.WithMiddlewares(func(next runtime.HandlerFunc) runtime.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
				var route string
				if pat, ok := runtime.HTTPPattern(r.Context()); ok {
					route = pat.String()
				}
				instrument(route, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					next(w, r, params)
				})).ServeHTTP(w, r)
			}
		}),
	)
	if err := pb.RegisterCredenceHandlerClient(context.Background(), gw, client); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle("/", n.webHandler())
	mux.Handle("/v1/", hashPathParams(gw))
	mux.Handle("GET /openapi.json", instrument("/openapi.json", staticJSON(openAPIJSON)))
	mux.Handle("GET /genesis.json", instrument("/genesis.json", staticJSON(genesis)))
	mux.Handle("GET /receipts/{file}", instrument("/receipts/{hash}.json", receiptFileHandler(client)))
	mux.Handle("GET /v1/statuslists/{issuer}/{id}", instrument("/v1/statuslists/{issuer}/{id}", n.statusListHandler()))

	lis, err := net.Listen("tcp", cfg.HTTPAddress)
	if err != nil {
		return fmt.Errorf("HTTP listen on %s: %w", cfg.HTTPAddress, err)
	}
	idle := newIdleConns()
	sl := newSourceListener(lis, cfg.MaxConnections, cfg.MaxConnectionsPerSource)
	sl.evict = idle.evictOldest
	lis = sl
	if serverTLS != nil {
		// Outermost, so that the server sees TLS connections: it bounds
		// the handshake by ReadHeaderTimeout and tells a plaintext client
		// it reached an HTTPS server.
		lis = tls.NewListener(lis, serverTLS)
	}
	n.httpLis = lis
	n.http = &http.Server{
		Handler:           cors(cfg.HTTPCORSOrigins, n.admit(routes, cfg.MaxHTTPBodyBytes, mux)),
		ReadHeaderTimeout: cfg.HandshakeTimeout.Duration,
		IdleTimeout:       cfg.IdleTimeout.Duration,
		MaxHeaderBytes:    64 << 10,
		ConnState:         idle.track,
	}
	go func() {
		if err := n.http.Serve(n.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("HTTP server stopped", "err", err)
		}
	}()
	return nil
}

// stopHTTP lets requests in flight finish (they are bounded by the gRPC
// calls they relay) before the gRPC server drains.
func (n *Node) stopHTTP() {
	if n.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.http.Shutdown(ctx); err != nil {
			n.log.Warn("HTTP shutdown", "err", err)
		}
	} else if n.httpLis != nil {
		n.httpLis.Close()
	}
	if n.gatewayConn != nil {
		n.gatewayConn.Close()
	}
}

// HTTPAddr is the address the HTTP gateway listens on ("" when off).
func (n *Node) HTTPAddr() string {
	if n.httpLis == nil {
		return ""
	}
	return n.httpLis.Addr().String()
}

// pinnedTLS trusts exactly the node's own certificate: the gateway dials
// its own server in process, under no name the certificate need hold.
func pinnedTLS(own []byte) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the exact comparison below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], own) {
				return errors.New("the gRPC listener does not present this node's certificate")
			}
			return nil
		},
	}
}

// cors lets pages of the allowed origins read; a preflight is granted for
// reads only, so a browser never sends a cross-origin write.
func cors(origins []string, next http.Handler) http.Handler {
	anyOrigin := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !(anyOrigin || slices.Contains(origins, origin)) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		if anyOrigin {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if m := r.Header.Get("Access-Control-Request-Method"); m == http.MethodGet || m == http.MethodHead {
				h.Set("Access-Control-Allow-Methods", "GET, HEAD")
				h.Set("Access-Control-Max-Age", "600")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hashPathParams turns the hash of /v1/receipts/{hash} and /v1/status/{hash},
// given in hex or multibase as everywhere else, into the base64 the generated
// gateway decodes bytes from.
func hashPathParams(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, prefix := range []string{"/v1/receipts/", "/v1/status/"} {
			rest, ok := strings.CutPrefix(r.URL.Path, prefix)
			if !ok || rest == "" || strings.Contains(rest, "/") {
				continue
			}
			h, err := proof.ParseHash(rest)
			if err != nil {
				writeError(w, status.Errorf(codes.InvalidArgument, "hash: %v; give the SHA-256 in hex or multibase", err))
				return
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path = prefix + base64.URLEncoding.EncodeToString(h)
			r2.URL.RawPath = ""
			next.ServeHTTP(w, r2)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// httpError is the JSON body of every error: the gRPC code by number and
// name, and the message.
type httpError struct {
	Code    codes.Code `json:"code"`
	Status  string     `json:"status"`
	Message string     `json:"message"`
}

// writeError answers err with the HTTP status of its gRPC code.
func writeError(w http.ResponseWriter, err error) {
	writeErrorStatus(w, runtime.HTTPStatusFromCode(status.Code(err)), err)
}

// writeErrorStatus answers err with an HTTP status that says more than its
// gRPC code's (405, 413).
func writeErrorStatus(w http.ResponseWriter, httpStatus int, err error) {
	st := status.Convert(err)
	b, _ := json.Marshal(httpError{Code: st.Code(), Status: codeName(st.Code()), Message: st.Message()})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	w.Write(append(b, '\n'))
}

func writeTooLarge(w http.ResponseWriter, max int64) {
	writeErrorStatus(w, http.StatusRequestEntityTooLarge, status.Errorf(codes.ResourceExhausted,
		"request body over %d bytes (max_http_body_bytes)", max))
}

// httpRoute is one path template of the OpenAPI document and the methods
// it serves, each with whether it needs the bearer token.
type httpRoute struct {
	segs    []string
	methods map[string]bool
	allow   string
}

// parseRoutes reads the routes from the OpenAPI document: what the node
// tells clients it serves is what it admits.
func parseRoutes(doc []byte) ([]httpRoute, error) {
	var d struct {
		Paths map[string]map[string]struct {
			Security []map[string][]string `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("the embedded OpenAPI document: %w", err)
	}
	var routes []httpRoute
	for path, ops := range d.Paths {
		rt := httpRoute{segs: strings.Split(path, "/"), methods: make(map[string]bool)}
		var allow []string
		for m, op := range ops {
			m = strings.ToUpper(m)
			rt.methods[m] = len(op.Security) > 0
			allow = append(allow, m)
			if m == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
		slices.Sort(allow)
		rt.allow = strings.Join(allow, ", ")
		routes = append(routes, rt)
	}
	return routes, nil
}

// match reports whether path fits the template: a segment "{name}" stands
// for any one segment, "{name}.json" for any ending in ".json".
func (rt *httpRoute) match(path string) bool { return rt.matchSegs(strings.Split(path, "/")) }

// matchSegs is match of a path already split at its slashes.
func (rt *httpRoute) matchSegs(segs []string) bool {
	if len(segs) != len(rt.segs) {
		return false
	}
	for i, t := range rt.segs {
		if strings.HasPrefix(t, "{") {
			_, suffix, _ := strings.Cut(t, "}")
			if len(segs[i]) <= len(suffix) || !strings.HasSuffix(segs[i], suffix) {
				return false
			}
		} else if t != segs[i] {
			return false
		}
	}
	return true
}

// admit refuses, before any work, a request the node would only fail
// later, worse: a path or query that is not UTF-8 (the gRPC call would fail
// to encode it: 500), a method its route does not serve (405), a write
// without a known token, and a body over maxBody (413), the last two before
// a byte of the body is read. HEAD is served as GET without the body.
func (n *Node) admit(routes []httpRoute, maxBody int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, refuse := admission(routes, n.auth, maxBody, r)
		if refuse != nil {
			// Counted as the gateway counts its answers, under the route.
			var route string
			if rt != nil {
				route = strings.Join(rt.segs, "/")
			}
			instrument(route, refuse).ServeHTTP(w, r)
			return
		}
		if rt != nil && r.Method == http.MethodHead {
			// The server writes no body for a HEAD, whatever the handler
			// writes.
			r = r.Clone(r.Context())
			r.Method = http.MethodGet
		}
		r.Body = &boundedBody{ReadCloser: http.MaxBytesReader(w, r.Body, maxBody), max: maxBody}
		next.ServeHTTP(w, r)
	})
}

// admission finds r's route and, when r is not admitted, the answer that
// refuses it.
func admission(routes []httpRoute, auth *authorizer, maxBody int64, r *http.Request) (*httpRoute, http.Handler) {
	refuse := func(httpStatus int, err error) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeErrorStatus(w, httpStatus, err) })
	}
	var rt *httpRoute
	segs := strings.Split(r.URL.Path, "/") // once, not once a route
	if i := slices.IndexFunc(routes, func(rt httpRoute) bool { return rt.matchSegs(segs) }); i >= 0 {
		rt = &routes[i]
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return rt, refuse(http.StatusBadRequest, status.Errorf(codes.InvalidArgument, "query: %v", err))
	}
	if !utf8.ValidString(r.URL.Path) {
		return rt, refuse(http.StatusBadRequest, status.Error(codes.InvalidArgument, "the path is not UTF-8"))
	}
	for k, vs := range query {
		if !utf8.ValidString(k) || slices.ContainsFunc(vs, func(v string) bool { return !utf8.ValidString(v) }) {
			return rt, refuse(http.StatusBadRequest, status.Errorf(codes.InvalidArgument,
				"query parameter %s is not UTF-8", quoted(strings.ToValidUTF8(k, "\uFFFD"))))
		}
	}
	if rt != nil {
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		needsToken, served := rt.methods[method]
		if !served {
			allow := rt.allow
			return rt, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Allow", allow)
				writeErrorStatus(w, http.StatusMethodNotAllowed, status.Errorf(codes.Unimplemented,
					"%s %s: method not allowed; %s serves %s (the routes are listed at /openapi.json)", r.Method, r.URL.Path, r.URL.Path, allow))
			})
		}
		if needsToken {
			if _, err := bearerIssuer(auth, r.Header.Values("Authorization")); err != nil {
				return rt, refuse(http.StatusUnauthorized, err)
			}
		}
	}
	if r.ContentLength > maxBody {
		return rt, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeTooLarge(w, maxBody) })
	}
	return rt, nil
}

// boundedBody is a request body cut off at max bytes, and whether it was.
type boundedBody struct {
	io.ReadCloser
	max  int64
	over bool
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.over = true
	}
	return n, err
}

// bearerIssuer is the issuer whose token the one authorization value
// bears, as the API checks it: the HTTP face checks it too before it reads
// a write's body.
func bearerIssuer(auth *authorizer, vals []string) (string, error) {
	switch len(vals) {
	case 0:
		return "", status.Error(codes.Unauthenticated, `missing "authorization: Bearer <token>" metadata`)
	case 1:
	default:
		return "", status.Errorf(codes.Unauthenticated, "%d authorization headers; send exactly one", len(vals))
	}
	// The scheme is case-insensitive (RFC 9110, section 11.1).
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", status.Error(codes.Unauthenticated, `authorization must be "Bearer <token>"`)
	}
	issuer, ok := auth.issuer(tok)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "unknown API token")
	}
	return issuer, nil
}

// codeName is a code's canonical name (NOT_FOUND), as in google.rpc.Code.
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func staticJSON(body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

// forwardAuth passes the request's Authorization to the gRPC call, as the
// gateway does.
func forwardAuth(r *http.Request) context.Context {
	ctx := r.Context()
	if a := r.Header.Get("Authorization"); a != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", a)
	}
	return ctx
}

// receiptFileHandler serves GET /receipts/{hash}.json: a receipt in the
// file form a graduate keeps (docs/receipt.md).
func receiptFileHandler(client pb.CredenceClient) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutSuffix(r.PathValue("file"), ".json")
		if !ok {
			writeError(w, status.Error(codes.NotFound, "receipts are at /receipts/{hash}.json"))
			return
		}
		h, err := proof.ParseHash(name)
		if err != nil {
			writeError(w, status.Errorf(codes.InvalidArgument, "hash: %v; give the SHA-256 in hex or multibase", err))
			return
		}
		res, err := client.GetReceipt(forwardAuth(r), &pb.GetReceiptRequest{Hash: h, Issuer: r.URL.Query().Get("issuer")})
		if err != nil {
			writeError(w, err)
			return
		}
		b, err := proof.MarshalReceiptJSON(res.Receipt)
		if err != nil {
			writeError(w, status.Errorf(codes.Internal, "receipt file: %v", err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
}
