package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

type httpAnswer struct {
	code   int
	header http.Header
	body   []byte
}

func httpDo(t *testing.T, method, url, body string, header map[string]string) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpAnswer{res.StatusCode, res.Header, b}
}

// wantHTTPError checks an error answer: its HTTP status and the JSON body
// with the gRPC code and a message.
func wantHTTPError(t *testing.T, a httpAnswer, status int, code codes.Code, msgPart string) {
	t.Helper()
	var e httpError
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("error body is not JSON: %q", a.body)
	}
	if a.code != status || e.Code != code || e.Status != codeName(code) || !strings.Contains(e.Message, msgPart) {
		t.Fatalf("want HTTP %d %s containing %q, got %d %s", status, codeName(code), msgPart, a.code, a.body)
	}
}

// TestHTTPGateway: on a real node, every read method's JSON over HTTP is the
// gRPC answer; a hash is accepted in hex and multibase; writes need the
// token; errors are JSON with the gRPC code; the file routes serve what a
// verification page reads.
func TestHTTPGateway(t *testing.T) {
	t.Parallel()
	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	base := "http://" + n.HTTPAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	hash := hashOf("gateway")
	submit := `{"hashes":"` + base64.StdEncoding.EncodeToString(hash) + `"}`
	t.Run("a write without the token is refused", func(t *testing.T) {
		wantHTTPError(t, httpDo(t, "POST", base+"/v1/submit", submit, nil), 401, codes.Unauthenticated, "authorization")
		wantHTTPError(t, httpDo(t, "POST", base+"/v1/submit", submit, map[string]string{"Authorization": "Bearer wrong"}),
			401, codes.Unauthenticated, "unknown API token")
	})
	a := httpDo(t, "POST", base+"/v1/submit", submit, map[string]string{"Authorization": "Bearer " + h.token})
	var sub pb.SubmitResponse
	if a.code != 200 || protojson.Unmarshal(a.body, &sub) != nil || sub.Queued != 1 {
		t.Fatalf("submit with the token: %d %s", a.code, a.body)
	}
	checkOpenAPI(t, "POST", "/v1/submit", a.code, a.body)
	receipt := waitReceipt(ctx, t, cl, hash)

	issuer, key, err := IssuerSigningKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	member, memberKey, err := MemberKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	broadcast := func(signer string, k []byte, body *pb.TxBody) int64 {
		t.Helper()
		body.ChainId, body.Signer = n.chainID, signer
		body.Sequence = nextSequence(ctx, t, cl, body)
		tx, err := app.SignTx(body, k)
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.Broadcast(ctx, &pb.BroadcastRequest{Tx: tx})
		if err != nil || res.Code != 0 {
			t.Fatalf("broadcast: %v %v", res, err)
		}
		return res.Height
	}
	broadcast(issuer, key, &pb.TxBody{Msg: &pb.TxBody_CreateRegistry{CreateRegistry: &pb.CreateRegistry{
		Id: "list-1", Purpose: pb.RegistryPurpose_REGISTRY_PURPOSE_REVOCATION, Size: 131072}}})
	updated := broadcast(issuer, key, &pb.TxBody{Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: &pb.UpdateRegistry{
		Issuer: issuer, Id: "list-1", Set: []uint64{5, 70000}}}})
	broadcast(member, memberKey, &pb.TxBody{Msg: &pb.TxBody_Propose{Propose: &pb.Propose{Description: "over HTTP",
		Action: &pb.Propose_ChangePower{ChangePower: &pb.ChangePower{Id: member, Power: 11}}}}})

	hexHash := hex.EncodeToString(hash)
	reads := []struct {
		name, path string
		answer     proto.Message
		grpc       func() (proto.Message, error)
	}{
		{"GetReceipt by hex", "/v1/receipts/" + hexHash, &pb.GetReceiptResponse{}, func() (proto.Message, error) {
			return cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hash})
		}},
		{"GetReceipt by multibase", "/v1/receipts/" + proof.FormatBinary(hash) + "?issuer=" + issuer, &pb.GetReceiptResponse{}, func() (proto.Message, error) {
			return cl.GetReceipt(ctx, &pb.GetReceiptRequest{Hash: hash, Issuer: issuer})
		}},
		{"GetStatus", "/v1/status/" + hexHash, &pb.GetStatusResponse{}, func() (proto.Message, error) {
			return cl.GetStatus(ctx, &pb.GetStatusRequest{Hash: hash})
		}},
		{"GetBatch", fmt.Sprintf("/v1/batches/%s/%d?include_hashes=true", issuer, receipt.Batch.Seq), &pb.GetBatchResponse{}, func() (proto.Message, error) {
			return cl.GetBatch(ctx, &pb.GetBatchRequest{Issuer: issuer, Seq: receipt.Batch.Seq, IncludeHashes: true})
		}},
		{"NodeInfo", "/v1/node", &pb.NodeInfoResponse{}, func() (proto.Message, error) {
			return cl.NodeInfo(ctx, &pb.NodeInfoRequest{})
		}},
		{"GetProposal", "/v1/proposals/1", &pb.GetProposalResponse{}, func() (proto.Message, error) {
			return cl.GetProposal(ctx, &pb.GetProposalRequest{Id: 1})
		}},
		{"ListProposals", "/v1/proposals?limit=5", &pb.ListProposalsResponse{}, func() (proto.Message, error) {
			return cl.ListProposals(ctx, &pb.ListProposalsRequest{Limit: 5})
		}},
		{"GetIssuer", "/v1/issuers/" + issuer, &pb.GetIssuerResponse{}, func() (proto.Message, error) {
			return cl.GetIssuer(ctx, &pb.GetIssuerRequest{Id: issuer})
		}},
		{"GetRegistryStatus", "/v1/registries/" + issuer + "/list-1/entries/70000", &pb.GetRegistryStatusResponse{}, func() (proto.Message, error) {
			return cl.GetRegistryStatus(ctx, &pb.GetRegistryStatusRequest{Issuer: issuer, Id: "list-1", Index: 70000})
		}},
		{"ExportRegistry", "/v1/registries/" + issuer + "/list-1/export", &pb.ExportRegistryResponse{}, func() (proto.Message, error) {
			return cl.ExportRegistry(ctx, &pb.ExportRegistryRequest{Issuer: issuer, Id: "list-1"})
		}},
		{"GetSequence", "/v1/sequences/ACCOUNT_KIND_ISSUER/" + issuer, &pb.GetSequenceResponse{}, func() (proto.Message, error) {
			return cl.GetSequence(ctx, &pb.GetSequenceRequest{Kind: pb.AccountKind_ACCOUNT_KIND_ISSUER, Id: issuer})
		}},
	}
	for _, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			// Answers that follow the chain's height are compared when two
			// gRPC answers around the HTTP one agree.
			for try := 0; ; try++ {
				before, err := r.grpc()
				if err != nil {
					t.Fatal(err)
				}
				a := httpDo(t, "GET", base+r.path, "", nil)
				after, err := r.grpc()
				if err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(before, after) && try < 20 {
					continue
				}
				if a.code != 200 || a.header.Get("Content-Type") != "application/json" {
					t.Fatalf("HTTP %d %s: %s", a.code, a.header.Get("Content-Type"), a.body)
				}
				got := proto.Clone(r.answer)
				if err := protojson.Unmarshal(a.body, got); err != nil {
					t.Fatalf("answer is not the method's JSON: %v\n%s", err, a.body)
				}
				if !proto.Equal(got, before) {
					t.Fatalf("HTTP and gRPC answers differ:\nHTTP %v\ngRPC %v", got, before)
				}
				checkOpenAPI(t, "GET", strings.SplitN(r.path, "?", 2)[0], a.code, a.body)
				return
			}
		})
	}

	t.Run("errors are JSON with the gRPC code", func(t *testing.T) {
		for _, path := range []string{"/v1/receipts/" + strings.Repeat("ab", 32), "/v1/proposals/99", "/receipts/abcd.json"} {
			a := httpDo(t, "GET", base+path, "", nil)
			checkOpenAPI(t, "GET", path, a.code, a.body)
		}
		wantHTTPError(t, httpDo(t, "GET", base+"/v1/receipts/"+strings.Repeat("ab", 32), "", nil), 404, codes.NotFound, "not anchored")
		wantHTTPError(t, httpDo(t, "GET", base+"/v1/receipts/abcd", "", nil), 400, codes.InvalidArgument, "want 32")
		wantHTTPError(t, httpDo(t, "GET", base+"/v1/status/zzzz", "", nil), 400, codes.InvalidArgument, "hex or multibase")
		wantHTTPError(t, httpDo(t, "GET", base+"/v1/batches/"+issuer+"/0", "", nil), 400, codes.InvalidArgument, "start at 1")
		wantHTTPError(t, httpDo(t, "GET", base+"/v1/proposals/99", "", nil), 404, codes.NotFound, "no proposal 99")
		wantHTTPError(t, httpDo(t, "GET", base+"/v1/no-such-thing", "", nil), 404, codes.NotFound, "/openapi.json")
		wantHTTPError(t, httpDo(t, "GET", base+"/v1/registries/"+issuer+"/list-1/entries/131072", "", nil), 400, codes.InvalidArgument, "outside")
	})

	t.Run("receipt file", func(t *testing.T) {
		for _, name := range []string{hexHash, proof.FormatBinary(hash)} {
			a := httpDo(t, "GET", base+"/receipts/"+name+".json", "", nil)
			if a.code != 200 {
				t.Fatalf("%d %s", a.code, a.body)
			}
			got, err := proof.UnmarshalReceiptJSON(a.body, proof.Limits{})
			if err != nil {
				t.Fatalf("not a receipt file: %v", err)
			}
			if !proto.Equal(got, receipt) {
				t.Fatal("the receipt file is not the node's receipt")
			}
			if _, err := proof.Verify(got, h.trust); err != nil {
				t.Fatalf("receipt file does not verify: %v", err)
			}
			checkOpenAPI(t, "GET", "/receipts/"+name+".json", a.code, a.body)
		}
		wantHTTPError(t, httpDo(t, "GET", base+"/receipts/"+strings.Repeat("cd", 32)+".json", "", nil), 404, codes.NotFound, "not anchored")
		wantHTTPError(t, httpDo(t, "GET", base+"/receipts/"+hexHash, "", nil), 404, codes.NotFound, ".json")
	})

	t.Run("genesis and OpenAPI", func(t *testing.T) {
		want, err := os.ReadFile(filepath.Join(h.dir, "config", "genesis.json"))
		if err != nil {
			t.Fatal(err)
		}
		if a := httpDo(t, "GET", base+"/genesis.json", "", nil); a.code != 200 || !bytes.Equal(a.body, want) {
			t.Fatalf("genesis: %d, %d bytes, want the file's %d", a.code, len(a.body), len(want))
		}
		a := httpDo(t, "GET", base+"/openapi.json", "", nil)
		var doc struct {
			Paths map[string]map[string]any `json:"paths"`
		}
		if err := json.Unmarshal(a.body, &doc); err != nil {
			t.Fatal(err)
		}
		for _, r := range reads {
			path := strings.SplitN(r.path, "?", 2)[0]
			found := false
			for p, ops := range doc.Paths {
				if ops["get"] != nil && pathMatches(p, path) {
					found = true
				}
			}
			if !found {
				t.Errorf("OpenAPI has no GET route for %s", path)
			}
		}
		if doc.Paths["/v1/submit"]["post"] == nil {
			t.Error("OpenAPI has no POST /v1/submit")
		}
		// Every documented route is one this test reads.
		served := []string{"/v1/submit", "/v1/statuslists/i/l", "/receipts/x.json", "/genesis.json", "/openapi.json"}
		for _, r := range reads {
			served = append(served, strings.SplitN(r.path, "?", 2)[0])
		}
		for p := range doc.Paths {
			if !slices.ContainsFunc(served, func(s string) bool {
				return pathMatches(p, s) || p == "/receipts/{hash}.json" && s == "/receipts/x.json"
			}) {
				t.Errorf("OpenAPI route %s is not tested here", p)
			}
		}
		var spec struct {
			Components struct {
				SecuritySchemes map[string]struct{ Type, Scheme string } `json:"securitySchemes"`
			} `json:"components"`
			Paths map[string]map[string]struct {
				Security []map[string][]string `json:"security"`
			} `json:"paths"`
		}
		if err := json.Unmarshal(a.body, &spec); err != nil {
			t.Fatal(err)
		}
		if b := spec.Components.SecuritySchemes["bearer"]; b.Type != "http" || b.Scheme != "bearer" || len(spec.Paths["/v1/submit"]["post"].Security) == 0 {
			t.Errorf("OpenAPI does not say POST /v1/submit needs a bearer token: %+v", spec)
		}
	})

	t.Run("CORS lets other sites read, not write", func(t *testing.T) {
		origin := map[string]string{"Origin": "https://verifier.example"}
		if a := httpDo(t, "GET", base+"/v1/node", "", origin); a.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("a read has no Access-Control-Allow-Origin: %v", a.header)
		}
		pre := httpDo(t, "OPTIONS", base+"/v1/status/"+hexHash, "", map[string]string{
			"Origin": "https://verifier.example", "Access-Control-Request-Method": "GET"})
		if !strings.Contains(pre.header.Get("Access-Control-Allow-Methods"), "GET") {
			t.Fatalf("read preflight refused: %v", pre.header)
		}
		pre = httpDo(t, "OPTIONS", base+"/v1/submit", "", map[string]string{
			"Origin": "https://verifier.example", "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization"})
		if m := pre.header.Get("Access-Control-Allow-Methods"); strings.Contains(m, "POST") || pre.header.Get("Access-Control-Allow-Headers") != "" {
			t.Fatalf("a cross-origin write passed its preflight: %v", pre.header)
		}
	})

	t.Run("W3C status list", func(t *testing.T) {
		// The list is of the newest provable state, two blocks behind.
		a := httpDo(t, "GET", base+StatusListPath(issuer, "list-1"), "", nil)
		for a.code == 200 && ctx.Err() == nil {
			var at struct {
				Height int64 `json:"credenceHeight"`
			}
			if json.Unmarshal(a.body, &at) == nil && at.Height >= updated {
				break
			}
			time.Sleep(100 * time.Millisecond)
			a = httpDo(t, "GET", base+StatusListPath(issuer, "list-1"), "", nil)
		}
		if a.code != 200 || a.header.Get("Content-Type") != "application/vc+ld+json" {
			t.Fatalf("%d %s: %s", a.code, a.header.Get("Content-Type"), a.body)
		}
		var doc struct {
			Context           []string `json:"@context"`
			ID                string   `json:"id"`
			Type              []string `json:"type"`
			Issuer            string   `json:"issuer"`
			ValidFrom         string   `json:"validFrom"`
			CredentialSubject struct {
				ID, Type, StatusPurpose, EncodedList string
			} `json:"credentialSubject"`
			Height int64           `json:"credenceHeight"`
			Export json.RawMessage `json:"credenceRegistryExport"`
		}
		if err := json.Unmarshal(a.body, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Context) == 0 || doc.Context[0] != "https://www.w3.org/ns/credentials/v2" ||
			!slicesContain(doc.Type, "VerifiableCredential") || !slicesContain(doc.Type, "BitstringStatusListCredential") ||
			doc.ID != StatusListID(n.chainID, issuer, "list-1") || !strings.Contains(doc.Issuer, issuer) ||
			doc.CredentialSubject.Type != "BitstringStatusList" || doc.CredentialSubject.StatusPurpose != "revocation" {
			t.Fatalf("document fields: %s", a.body)
		}
		validFrom, err := time.Parse(time.RFC3339, doc.ValidFrom)
		if err != nil {
			t.Fatalf("validFrom: %v", err)
		}
		var ex proof.RegistryExport
		if err := protojson.Unmarshal(doc.Export, &ex); err != nil {
			t.Fatal(err)
		}
		bits, res, err := proof.VerifyRegistryExport(&ex, h.trust, time.Minute, time.Now())
		if err != nil {
			t.Fatalf("the document's proofs do not verify: %v", err)
		}
		if ex.Height != doc.Height || !res.Time.Truncate(time.Second).Equal(validFrom) || res.Issuer != issuer || res.Purpose != "revocation" {
			t.Fatalf("document height %d, validFrom %s; proven %d, %s", doc.Height, validFrom, ex.Height, res.Time)
		}
		listed, err := proof.DecodeStatusList(doc.CredentialSubject.EncodedList, len(bits))
		if err != nil || !bytes.Equal(listed, bits) {
			t.Fatalf("encodedList is not the proven list: %v", err)
		}
		if !proof.BitSet(bits, 5) || !proof.BitSet(bits, 70000) || proof.BitSet(bits, 6) {
			t.Fatal("the list's bits are not those set")
		}
		checkOpenAPI(t, "GET", StatusListPath(issuer, "list-1"), a.code, a.body)
		wantHTTPError(t, httpDo(t, "GET", base+StatusListPath(issuer, "nope"), "", nil), 404, codes.NotFound, "no status list")
	})
}

// pathMatches reports whether an OpenAPI path template matches a path.
func pathMatches(template, path string) bool {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if !strings.HasPrefix(ts[i], "{") && ts[i] != ps[i] {
			return false
		}
	}
	return true
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestCORSOrigins: with named origins, only they are let read.
func TestCORSOrigins(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	srv := httptest.NewServer(cors([]string{"https://a.example"}, ok))
	defer srv.Close()
	if a := httpDo(t, "GET", srv.URL, "", map[string]string{"Origin": "https://a.example"}); a.header.Get("Access-Control-Allow-Origin") != "https://a.example" {
		t.Fatalf("named origin: %v", a.header)
	}
	if a := httpDo(t, "GET", srv.URL, "", map[string]string{"Origin": "https://b.example"}); a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin allowed: %v", a.header)
	}
}
