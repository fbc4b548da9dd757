package node

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// writeSelfSigned writes a certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "credence test node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "api-cert.pem"), filepath.Join(dir, "api-key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// TestAPIOverTLS: with a certificate configured the API speaks TLS only,
// and a client trusting the certificate anchors and fetches receipts.
func TestAPIOverTLS(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	certPath, keyPath := writeSelfSigned(t, filepath.Join(h.dir, "config"))
	c, err := loadConfig(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	c.TLSCertFile, c.TLSKeyFile = filepath.Base(certPath), keyPath
	os.Remove(appConfigPath(h.dir))
	if err := writeConfig(h.dir, c); err != nil {
		t.Fatal(err)
	}
	n := h.start(t)
	defer n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	plain, err := grpc.NewClient(n.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := pb.NewCredenceClient(plain).NodeInfo(short, &pb.NodeInfoRequest{}); err == nil {
		t.Fatal("a plaintext client was served by a TLS-only API")
	}

	creds, err := credentials.NewClientTLSFromFile(certPath, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(n.GRPCAddr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := pb.NewCredenceClient(conn)
	hash := hashOf("over tls")
	if _, err := cl.Submit(h.authed(ctx), &pb.SubmitRequest{Hashes: hash}); err != nil {
		t.Fatal(err)
	}
	if _, err := proof.Verify(waitReceipt(ctx, t, cl, hash), h.trust); err != nil {
		t.Fatal(err)
	}

	// The HTTP API takes the same certificate, and its gateway reaches the
	// TLS-only gRPC listener.
	pemCert, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCert)
	httpsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	res, err := httpsClient.Get("https://" + n.HTTPAddr() + "/v1/receipts/" + hex.EncodeToString(hash))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var got pb.GetReceiptResponse
	if res.StatusCode != 200 || protojson.Unmarshal(body, &got) != nil || !bytes.Equal(got.Receipt.GetBatch().GetRoot(), waitReceipt(ctx, t, cl, hash).Batch.Root) {
		t.Fatalf("HTTPS receipt: %d %s", res.StatusCode, body)
	}
	if res, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + n.HTTPAddr() + "/v1/node"); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("a plaintext HTTP client was served by a TLS-only API: %d", res.StatusCode)
		}
	}
}
