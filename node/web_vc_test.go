package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/credence-ledger/credence/app"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
	"github.com/credence-ledger/credence/vc"
)

// TestVerificationPageCredential drops Verifiable Credentials that carry
// their own anchor proof on the page of a real node: signed, anchored and
// attached with the code the CLI uses (vc.Sign, Submit, vc.AttachReceipt),
// their status in the issuer's signed status list on the same node. One
// verdict each: VALID, still VALID re-serialised, INVALID naming the step
// after a claim changed, REVOKED once its entry is set.
func TestVerificationPageCredential(t *testing.T) {
	ctx := browser(t)
	shots := screenshots(t)

	h := newTestHome(t)
	n := h.start(t)
	defer n.Stop()
	cl := dialTest(t, n.GRPCAddr())
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	issuer, key, err := IssuerSigningKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	did, err := vc.DIDKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	genesisJSON := mustRead(t, filepath.Join(h.dir, "config", "genesis.json"))
	onlineURL := "http://" + n.HTTPAddr()
	listURL := onlineURL + StatusListPath(issuer, "diplomas")
	created := broadcastTx(rctx, t, cl, &pb.TxBody{ChainId: n.chainID, Signer: issuer,
		Msg: &pb.TxBody_CreateRegistry{CreateRegistry: &pb.CreateRegistry{
			Id: "diplomas", Purpose: pb.RegistryPurpose_REGISTRY_PURPOSE_REVOCATION, Size: app.MinStatusListSize, Url: listURL}}}, key)
	// signList has the issuer sign the list with set entries set, as
	// `credenced status-list set` does, and waits until the node serves it.
	signList := func(set []uint64, after int64) {
		t.Helper()
		for {
			res, err := cl.ExportRegistry(rctx, &pb.ExportRegistryRequest{Issuer: issuer, Id: "diplomas"})
			if err == nil && res.Export.Height >= after {
				m, err := SignedStatusListUpdate(res.Export, set, nil, key, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				body := &pb.TxBody{ChainId: n.chainID, Signer: issuer, Msg: &pb.TxBody_UpdateRegistry{UpdateRegistry: m}}
				body.Sequence = nextSequence(rctx, t, cl, body)
				tx, err := app.SignTx(body, key)
				if err != nil {
					t.Fatal(err)
				}
				br, err := cl.Broadcast(rctx, &pb.BroadcastRequest{Tx: tx})
				if err != nil {
					t.Fatal(err)
				}
				if br.Code == 0 {
					for s := fetchList(t, listURL); s.code != 200 || s.height < br.Height || s.signed != "true"; s = fetchList(t, listURL) {
						select {
						case <-rctx.Done():
							t.Fatalf("signed list of height %d not served", br.Height)
						case <-time.After(50 * time.Millisecond):
						}
					}
					return
				}
				if br.Code != app.CodeRejected || !strings.Contains(br.Log, "changed since") {
					t.Fatalf("signed update refused: %d %s", br.Code, br.Log)
				}
			}
			select {
			case <-rctx.Done():
				t.Fatalf("no signed update of the list (%v)", err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}

	// credential is a diploma signed by the issuer (eddsa-rdfc-2022),
	// anchored on the node and carrying its receipt.
	credential := func(name string, index int) []byte {
		t.Helper()
		doc := fmt.Sprintf(`{
  "@context": ["https://www.w3.org/ns/credentials/v2", "https://www.w3.org/ns/credentials/examples/v2"],
  "id": "urn:uuid:6a1676b8-b51f-11ed-937b-d76685a2%04d",
  "type": ["VerifiableCredential"],
  "issuer": %q,
  "validFrom": "2026-07-01T00:00:00Z",
  "credentialSubject": {"id": "did:example:%d", "name": %q, "degree": "BSc Physics"},
  "credentialStatus": {"id": "%s#%d", "type": "BitstringStatusListEntry", "statusPurpose": "revocation",
    "statusListIndex": "%d", "statusListCredential": %q}
}`, index, did, index, name, listURL, index, index, listURL)
		signed, err := vc.Sign([]byte(doc), vc.EddsaRDFC2022, key)
		if err != nil {
			t.Fatal(err)
		}
		hash, err := vc.CredentialHash(signed)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Submit(h.authed(rctx), &pb.SubmitRequest{Hashes: hash[:]}); err != nil {
			t.Fatal(err)
		}
		r := waitReceipt(rctx, t, cl, hash[:])
		out, err := vc.AttachReceipt(signed, r, genesisJSON)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	diploma := credential("Jane Doe", 7)
	revoked := credential("John Roe", 8)
	// Re-serialised as another tool would: keys sorted, indented.
	var anyDoc any
	if err := json.Unmarshal(diploma, &anyDoc); err != nil {
		t.Fatal(err)
	}
	reserialised, err := json.MarshalIndent(anyDoc, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	changed := []byte(strings.Replace(string(diploma), `"Jane Doe"`, `"Jane Dow"`, 1))
	if string(changed) == string(diploma) {
		t.Fatalf("no claim to change in\n%s", diploma)
	}

	check := func(t *testing.T, path, shot string, wantStatus bool) pageResult {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		steps := []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(onlineURL + "/"), chromedp.WaitEnabled(chromedp.ID("verify")),
			chromedp.SetUploadFiles(chromedp.ID("credential"), []string{path}),
			chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.ID("result")),
		}
		if wantStatus {
			steps = append(steps, chromedp.WaitVisible(chromedp.ID("status")))
		}
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("page: %v", err)
		}
		got, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](`["verdict", "step", "details", "standing", "freshness"].map((id) => document.getElementById(id).textContent).concat([document.getElementById("result").className])`))
		if err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, shot), png, 0o644); err != nil {
			t.Fatal(err)
		}
		return pageResult{verdict: got[0], step: got[1], details: got[2], standing: got[3], freshness: got[4], class: got[5]}
	}

	// A list no update of its issuer's has signed yet: the ledger's proof
	// alone decides, as in credenced verify.
	t.Run("list not signed yet", func(t *testing.T) {
		res := check(t, write("diploma.json", diploma), "unsigned-list-credential.png", true)
		if res.verdict != "VALID" || res.class != "valid" || !strings.HasPrefix(res.standing, "Not revoked") {
			t.Fatalf("%+v", res)
		}
	})
	signList([]uint64{1}, created)

	for _, c := range []struct{ name, file string }{{"valid", "diploma.json"}, {"re-serialised", "reserialised.json"}} {
		t.Run(c.name, func(t *testing.T) {
			data := map[string][]byte{"diploma.json": diploma, "reserialised.json": reserialised}[c.file]
			res := check(t, write(c.file, data), c.name+"-credential.png", true)
			if res.verdict != "VALID" || res.class != "valid" || res.step != "" || !strings.Contains(res.details, "Issuer"+did) ||
				!strings.HasPrefix(res.standing, "Not revoked") || !utcSeconds.MatchString(res.freshness) {
				t.Fatalf("%+v", res)
			}
		})
	}
	t.Run("changed claim", func(t *testing.T) {
		res := check(t, write("changed.json", changed), "changed-credential.png", false)
		if res.verdict != "INVALID" || res.class != "invalid" ||
			!(strings.HasPrefix(res.step, "Failed at: "+vc.StepCredentialHash+" — ") || strings.HasPrefix(res.step, "Failed at: "+vc.StepIssuerProof+" — ")) {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		signList([]uint64{1, 8}, 0)
		res := check(t, write("revoked.json", revoked), "revoked-credential.png", true)
		if res.verdict != "REVOKED" || res.class != "invalid" || !strings.HasPrefix(res.standing, "Revoked by its issuer") {
			t.Fatalf("%+v", res)
		}
		// Its neighbour in the list still stands.
		res = check(t, write("diploma.json", diploma), "valid-after-revocation.png", true)
		if res.verdict != "VALID" {
			t.Fatalf("%+v", res)
		}
	})
}
