package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/credence-ledger/credence/app"
	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"github.com/credence-ledger/credence/vc"
)

// statusEntry is a credential's BitstringStatusListEntry, with the
// credential's issuer beside it.
type statusEntry struct {
	credentialIssuer     string
	statusPurpose        string
	statusListIndex      uint64
	statusListCredential string
}

// errRange is the Recommendation's RANGE_ERROR.
var errRange = errors.New("RANGE_ERROR: index outside the list")

// validateStatus runs, on a fetched status list credential, the validate
// algorithm of W3C Bitstring Status List v1.0 (§3.2) with the rules
// Digital Bazaar's vc-bitstring-status-list adds by default: the list is
// verified (its proof, by its issuer's did:key), its issuer is the
// credential's issuer, its statusPurpose is the entry's (one string
// compared), validFrom has passed, the list holds at least 131,072 entries
// and the index is inside it (statusSize 1). It answers the entry's bit.
func validateStatus(e statusEntry, doc []byte, now time.Time) (bool, error) {
	res, err := vc.Verify(doc, vc.ResolveDIDKey)
	if err != nil {
		return false, fmt.Errorf("STATUS_VERIFICATION_ERROR: %w", err)
	}
	var d struct {
		ID        string   `json:"id"`
		Type      []string `json:"type"`
		Issuer    string   `json:"issuer"`
		ValidFrom string   `json:"validFrom"`
		ValidUntl string   `json:"validUntil"`
		Subject   struct {
			ID            string          `json:"id"`
			Type          string          `json:"type"`
			StatusPurpose json.RawMessage `json:"statusPurpose"`
			EncodedList   string          `json:"encodedList"`
			TTL           uint64          `json:"ttl"`
		} `json:"credentialSubject"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return false, fmt.Errorf("PARSING_ERROR: %w", err)
	}
	for _, r := range res {
		if did, _, _ := strings.Cut(r.VerificationMethod, "#"); did != d.Issuer {
			return false, fmt.Errorf("STATUS_VERIFICATION_ERROR: proof by %s, issuer %s", r.VerificationMethod, d.Issuer)
		}
	}
	if d.ID != e.statusListCredential {
		return false, fmt.Errorf("STATUS_RETRIEVAL_ERROR: list id %q, entry points at %q", d.ID, e.statusListCredential)
	}
	if !slices.Contains(d.Type, "BitstringStatusListCredential") || d.Subject.Type != "BitstringStatusList" {
		return false, fmt.Errorf("STATUS_VERIFICATION_ERROR: types %v / %s", d.Type, d.Subject.Type)
	}
	if d.Issuer != e.credentialIssuer {
		return false, fmt.Errorf("STATUS_VERIFICATION_ERROR: list issuer %s is not the credential's %s", d.Issuer, e.credentialIssuer)
	}
	var purpose string
	if err := json.Unmarshal(d.Subject.StatusPurpose, &purpose); err != nil || purpose != e.statusPurpose {
		return false, fmt.Errorf("STATUS_VERIFICATION_ERROR: statusPurpose %s, entry's %q", d.Subject.StatusPurpose, e.statusPurpose)
	}
	from, err := time.Parse(time.RFC3339, d.ValidFrom)
	if err != nil || from.After(now) {
		return false, fmt.Errorf("STATUS_VERIFICATION_ERROR: validFrom %q", d.ValidFrom)
	}
	if d.ValidUntl != "" {
		return false, fmt.Errorf("STATUS_VERIFICATION_ERROR: validUntil %q not expected", d.ValidUntl)
	}
	bits, err := proof.DecodeStatusList(d.Subject.EncodedList, app.MaxStatusListSize/8)
	if err != nil {
		return false, fmt.Errorf("STATUS_VERIFICATION_ERROR: %w", err)
	}
	if len(bits)*8 < app.MinStatusListSize {
		return false, fmt.Errorf("STATUS_LIST_LENGTH_ERROR: %d entries", len(bits)*8)
	}
	if e.statusListIndex >= uint64(len(bits))*8 {
		return false, errRange
	}
	return proof.BitSet(bits, e.statusListIndex), nil
}

type servedList struct {
	doc    []byte
	signed string
	height int64
	cache  string
	code   int
}

func fetchList(t *testing.T, url string) servedList {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	// Every list answer, signed or not, is what /openapi.json says.
	if u, err := neturl.Parse(url); err != nil {
		t.Fatal(err)
	} else if u.Query().Get("format") == "" {
		checkOpenAPI(t, "GET", u.Path, res.StatusCode, b)
	}
	hh, _ := strconv.ParseInt(res.Header.Get(headerListHeight), 10, 64)
	return servedList{doc: b, signed: res.Header.Get(headerListSigned), height: hh,
		cache: res.Header.Get("Cache-Control"), code: res.StatusCode}
}

// pythonCheck runs vc/testdata/check_eddsa.py (pyld + python3-cryptography,
// no code shared with ours) on doc: its exit code. Without them the test
// fails, as vc/python_test.go does.
func pythonCheck(t *testing.T, doc []byte) int {
	t.Helper()
	var py string
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import pyld.jsonld, cryptography.hazmat.primitives.asymmetric.ed25519").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		// make test installs them (make test-deps): the independent check
		// is part of the test, not an extra.
		t.Fatal("python3 with pyld and cryptography not found: make test-deps (apt-get install python3-pyld python3-cryptography)")
	}
	dir := t.TempDir()
	ctxFile, err := filepath.Abs("../vc/contexts/credentials-v2.jsonld")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := json.Marshal(map[string]string{"https://www.w3.org/ns/credentials/v2": ctxFile})
	mapFile, docFile := filepath.Join(dir, "contexts.json"), filepath.Join(dir, "list.json")
	if err := os.WriteFile(mapFile, m, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(docFile, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "../vc/testdata/check_eddsa.py", docFile, mapFile).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Logf("check_eddsa.py: %s", out)
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

// TestSignedStatusList (issue 18): a list created with a url is served as
// its issuer signed it. The update is built by SignedStatusListUpdate, the
// CLI's code; the served bytes verify (ours and an independent Python
// check), pass the Recommendation's validate algorithm with Digital
// Bazaar's rules for a credential's entry, and fail them after one byte of
// the document or the proof changes; ?height= serves an older list as it
// was signed; a sponsor's update leaves the list unsigned, and says so.
func TestSignedStatusList(t *testing.T) {
	// Not parallel: it starts child processes. A child holds a copy of
	// every descriptor open at its fork until it execs, badger's directory
	// lock among them, so a parallel test that closed and reopened its
	// database in that moment would find it locked. Serial tests finish
	// before parallel ones start.
	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	issuer, key, err := IssuerSigningKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	did, _ := vc.DIDKey(key.Public().(ed25519.PublicKey))
	url := "http://" + n.HTTPAddr() + StatusListPath(issuer, "signed")
	created := broadcastTx(ctx, t, cl, &pb.TxBody{ChainId: n.chainID, Signer: issuer,
		Msg: &pb.TxBody_CreateRegistry{CreateRegistry: &pb.CreateRegistry{
			Id: "signed", Purpose: pb.RegistryPurpose_REGISTRY_PURPOSE_REVOCATION, Size: app.MinStatusListSize, Url: url}}}, key)

	// update signs set with the issuer's key over an export at least as
	// new as after, retrying while the list moves, as the CLI does.
	update := func(set []uint64, after int64) int64 {
		t.Helper()
		for {
			res, err := cl.ExportRegistry(ctx, &pb.ExportRegistryRequest{Issuer: issuer, Id: "signed"})
			if err == nil && res.Export.Height >= after {
				m, err := SignedStatusListUpdate(res.Export, set, nil, key, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				body := &pb.TxBody{ChainId: n.chainID, Signer: issuer, Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: m}}
				body.Sequence = nextSequence(ctx, t, cl, body)
				tx, err := app.SignTx(body, key)
				if err != nil {
					t.Fatal(err)
				}
				br, err := cl.Broadcast(ctx, &pb.BroadcastRequest{Tx: tx})
				if err != nil {
					t.Fatal(err)
				}
				if br.Code == 0 {
					return br.Height
				}
				if br.Code != app.CodeRejected || !strings.Contains(br.Log, "changed since") {
					t.Fatalf("signed update refused: %d %s", br.Code, br.Log)
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("no signed update of the list (%v)", err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// served waits for the list of a state at or after height.
	served := func(height int64) servedList {
		t.Helper()
		for {
			s := fetchList(t, url)
			if s.code == 200 && s.height >= height {
				return s
			}
			select {
			case <-ctx.Done():
				t.Fatalf("list of height >= %d not served: %d %s", height, s.code, s.doc)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}

	// Created, never updated by its issuer: nothing signed yet.
	first := served(created)
	if first.signed != "false" || bytes.Contains(first.doc, []byte(`"proof"`)) {
		t.Fatalf("a list its issuer never signed is served as signed=%q:\n%s", first.signed, first.doc)
	}

	at1 := update([]uint64{3, 1000}, created)
	s1 := served(at1)
	if s1.signed != "true" {
		t.Fatalf("signed list served with %s=%q:\n%s", headerListSigned, s1.signed, s1.doc)
	}
	t.Logf("served signed list (height %d):\n%s", s1.height, s1.doc)
	if s1.cache != "max-age=300" {
		t.Errorf("Cache-Control %q, want max-age=300 (ttl 300000 ms)", s1.cache)
	}
	entry := func(i uint64) statusEntry {
		return statusEntry{credentialIssuer: did, statusPurpose: "revocation", statusListIndex: i, statusListCredential: url}
	}
	for i, want := range map[uint64]bool{3: true, 1000: true, 4: false, app.MinStatusListSize - 1: false} {
		got, err := validateStatus(entry(i), s1.doc, time.Now())
		if err != nil || got != want {
			t.Fatalf("entry %d: %v, %v; want %v\n%s", i, got, err, want, s1.doc)
		}
	}
	if _, err := validateStatus(entry(app.MinStatusListSize), s1.doc, time.Now()); !errors.Is(err, errRange) {
		t.Errorf("index past the end: %v, want RANGE_ERROR", err)
	}
	other := entry(3)
	other.statusPurpose = "suspension"
	if _, err := validateStatus(other, s1.doc, time.Now()); err == nil {
		t.Error("a suspension entry validated against a revocation list")
	}
	other = entry(3)
	other.credentialIssuer = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	if _, err := validateStatus(other, s1.doc, time.Now()); err == nil {
		t.Error("a credential of another issuer validated against this list")
	}
	// One byte of the document, then one byte of the proof.
	for name, bad := range map[string][]byte{
		"document": bytes.Replace(s1.doc, []byte(`"revocation"`), []byte(`"revocatioN"`), 1),
		"proof":    flipProofValue(t, s1.doc),
	} {
		e := entry(3)
		e.statusPurpose = map[string]string{"document": "revocatioN", "proof": "revocation"}[name]
		if _, err := validateStatus(e, bad, time.Now()); err == nil || !strings.Contains(err.Error(), "STATUS_VERIFICATION_ERROR") {
			t.Errorf("one byte of the %s changed: %v, want a verification error", name, err)
		}
		if code := pythonCheck(t, bad); code != 1 {
			t.Errorf("one byte of the %s changed: python check exit %d, want 1", name, code)
		}
	}
	if code := pythonCheck(t, s1.doc); code != 0 {
		t.Errorf("served list: independent python check exit %d, want 0\n%s", code, s1.doc)
	}

	// The ledger proof beside it, for the same height.
	exRes := fetchList(t, url+"?format=export&height="+fmt.Sprint(s1.height))
	var ex proof.RegistryExport
	if err := protojson.Unmarshal(exRes.doc, &ex); err != nil {
		t.Fatalf("export: %v\n%s", err, exRes.doc)
	}
	bits, _, err := proof.VerifyRegistryExport(&ex, h.trust, time.Minute, time.Now())
	if err != nil || ex.Height != s1.height || !proof.BitSet(bits, 1000) {
		t.Fatalf("export beside the list: height %d (list %d): %v", ex.Height, s1.height, err)
	}

	at2 := update([]uint64{4}, at1)
	s2 := served(at2)
	if got, err := validateStatus(entry(4), s2.doc, time.Now()); err != nil || !got {
		t.Fatalf("entry 4 after its update: %v %v", got, err)
	}
	old := fetchList(t, url+"?height="+fmt.Sprint(s1.height))
	if old.code != 200 || !bytes.Equal(old.doc, s1.doc) || old.signed != "true" || old.height != s1.height {
		t.Fatalf("?height=%d: %d signed=%s, not the list served then:\n%s", s1.height, old.code, old.signed, old.doc)
	}
	if got, err := validateStatus(entry(4), old.doc, time.Now()); err != nil || got {
		t.Fatalf("entry 4 in the older list: %v %v", got, err)
	}
	now := fetchList(t, url+"?timestamp="+time.Now().UTC().Add(time.Hour).Format(time.RFC3339))
	if now.code != 200 || now.height < s2.height {
		t.Fatalf("?timestamp=later: %d height %d, want >= %d", now.code, now.height, s2.height)
	}
	for _, q := range []string{"?height=0", "?height=x", "?timestamp=yesterday", "?height=1&timestamp=2020-01-01T00:00:00Z"} {
		if r := fetchList(t, url+q); r.code != 400 {
			t.Errorf("%s: %d, want 400: %s", q, r.code, r.doc)
		}
	}
	if r := fetchList(t, url+"?timestamp=2000-01-01T00:00:00Z"); r.code != 410 || !strings.Contains(string(r.doc), "oldest") {
		t.Errorf("a timestamp before the chain: %d, want 410 naming the oldest height: %s", r.code, r.doc)
	}

	// The sponsor's update carries no issuer proof: served unsigned.
	member, memberKey, err := MemberKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	at3 := broadcastTx(ctx, t, cl, &pb.TxBody{ChainId: n.chainID, Signer: member, AsSponsor: true,
		Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: &pb.UpdateRegistry{Issuer: issuer, Id: "signed", Set: []uint64{5}}}}, memberKey)
	s3 := served(at3)
	if s3.signed != "false" || bytes.Contains(s3.doc, []byte(`"proof"`)) {
		t.Fatalf("after a sponsor's update: %s=%q:\n%s", headerListSigned, s3.signed, s3.doc)
	}
	if _, err := vc.Verify(s3.doc, vc.ResolveDIDKey); !errors.Is(err, vc.ErrNoProof) {
		t.Fatalf("unsigned list: Verify %v, want ErrNoProof", err)
	}
	var d struct {
		Subject struct {
			EncodedList string `json:"encodedList"`
		} `json:"credentialSubject"`
	}
	json.Unmarshal(s3.doc, &d)
	if b, err := proof.DecodeStatusList(d.Subject.EncodedList, app.MinStatusListSize/8); err != nil || !proof.BitSet(b, 5) || !proof.BitSet(b, 4) {
		t.Fatalf("unsigned list does not hold the sponsor's update (%v)", err)
	}
}

// flipProofValue changes one character of doc's proofValue.
func flipProofValue(t *testing.T, doc []byte) []byte {
	t.Helper()
	i := bytes.Index(doc, []byte(`"proofValue":"z`))
	if i < 0 {
		t.Fatalf("no proofValue in %s", doc)
	}
	out := bytes.Clone(doc)
	j := i + len(`"proofValue":"z`) + 5
	if out[j] == 'A' {
		out[j] = 'B'
	} else {
		out[j] = 'A'
	}
	return out
}
