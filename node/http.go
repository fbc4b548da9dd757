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
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// The HTTP face of a node: the JSON gateway generated from the proto files
// (proto/credence/v1/api_http.yaml), and the documents a verifier's page
// fetches as files. Every call goes through the node's own gRPC listener,
// so that authentication, limits and error codes are those of gRPC.

//go:embed openapi/credence.swagger.json
var openAPIJSON []byte

// gatewayMaxRecv bounds one gRPC answer relayed over HTTP; a registry
// export of the largest registry is the biggest.
const gatewayMaxRecv = 64 << 20

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
	conn, err := grpc.NewClient(loopbackTarget(n.lis.Addr()), grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(gatewayMaxRecv)))
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	n.gatewayConn = conn
	client := pb.NewCredenceClient(conn)

	marshaler := &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true}}
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, err)
		}),
		runtime.WithRoutingErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
			switch code {
			case http.StatusMethodNotAllowed:
				writeError(w, status.Errorf(codes.Unimplemented, "%s %s: method not allowed; the routes are listed at /openapi.json", r.Method, r.URL.Path))
			default:
				writeError(w, status.Errorf(codes.NotFound, "%s %s: no such route; the routes are listed at /openapi.json", r.Method, r.URL.Path))
			}
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
	mux.Handle("GET /v1/statuslists/{issuer}/{id}", instrument("/v1/statuslists/{issuer}/{id}", n.statusListHandler(client)))

	lis, err := net.Listen("tcp", cfg.HTTPAddress)
	if err != nil {
		return fmt.Errorf("HTTP listen on %s: %w", cfg.HTTPAddress, err)
	}
	lis = netutil.LimitListener(lis, cfg.MaxConnections)
	if serverTLS != nil {
		// Outermost, so that the server sees TLS connections: it bounds
		// the handshake by ReadHeaderTimeout and tells a plaintext client
		// it reached an HTTPS server.
		lis = tls.NewListener(lis, serverTLS)
	}
	n.httpLis = lis
	n.http = &http.Server{
		Handler:           cors(cfg.HTTPCORSOrigins, mux),
		ReadHeaderTimeout: cfg.HandshakeTimeout.Duration,
		IdleTimeout:       cfg.IdleTimeout.Duration,
		MaxHeaderBytes:    64 << 10,
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

// loopbackTarget is the gRPC listener's address as this host dials it.
func loopbackTarget(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
}

// pinnedTLS trusts exactly the node's own certificate: the gateway dials
// its own listener by loopback address, which the certificate need not name.
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
	st := status.Convert(err)
	b, _ := json.Marshal(httpError{Code: st.Code(), Status: codeName(st.Code()), Message: st.Message()})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(runtime.HTTPStatusFromCode(st.Code()))
	w.Write(append(b, '\n'))
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
