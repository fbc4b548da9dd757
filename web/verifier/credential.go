package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/credence-ledger/credence/proof"
	"github.com/credence-ledger/credence/vc"
)

// The page's verdicts beyond vc.Verdict's: a check that could not be made
// (a file or list that could not be read or fetched) is neither valid nor
// invalid.
const verdictUnchecked = "COULD NOT CHECK"

// statusListsPath is where a node serves signed status lists
// (docs/status.md); the page fetches only from the node that served it.
const statusListsPath = "/v1/statuslists/"

// credentialOutcome is what the page shows of a Verifiable Credential
// that carries its own anchor proof, as JSON.
type credentialOutcome struct {
	Verdict string `json:"verdict"`
	// Step is the failed step (vc.Step*, or the page's own), Reason why.
	Step              string        `json:"step,omitempty"`
	Reason            string        `json:"reason,omitempty"`
	GenesisChainID    string        `json:"genesis_chain_id,omitempty"`
	GenesisValidators int           `json:"genesis_validators,omitempty"`
	Issuer            string        `json:"issuer,omitempty"`
	CredentialHash    string        `json:"credential_hash,omitempty"`
	Anchors           []anchorShown `json:"anchors,omitempty"`
	// Status is the credential's status entries, each to be fetched from
	// Path on the node serving the page and checked by checkListStatus.
	Status []statusShown `json:"status,omitempty"`
}

type anchorShown struct {
	ChainID   string `json:"chain_id"`
	Member    string `json:"member"`
	SignerKey string `json:"signer_key"`
	Height    int64  `json:"height"`
	Time      string `json:"time"`
}

type statusShown struct {
	Entry vc.StatusEntry `json:"entry"`
	// Path is the list's path on a Credence node, empty when the list is
	// not served by one.
	Path string `json:"path,omitempty"`
}

// checkCredential verifies a credential file offline against a genesis
// file with vc.VerifyCredential, as `credenced verify` does.
func checkCredential(genesisJSON, doc []byte) *credentialOutcome {
	o := &credentialOutcome{}
	trust, err := proof.TrustRootFromGenesis(genesisJSON)
	if err != nil {
		o.Verdict, o.Step, o.Reason = verdictUnchecked, stepGenesis, err.Error()
		return o
	}
	o.GenesisChainID, o.GenesisValidators = trust.ChainID, len(trust.Validators)
	res, err := vc.VerifyCredential(doc, genesisJSON)
	if err != nil {
		// The verifier's own inputs were unusable: not a verdict on the
		// credential.
		o.Verdict, o.Step, o.Reason = verdictUnchecked, stepGenesis, err.Error()
		return o
	}
	o.Issuer = res.Issuer
	if res.Hash != ([32]byte{}) {
		o.CredentialHash = proof.FormatBinary(res.Hash[:])
	}
	for _, a := range res.Anchors {
		o.Anchors = append(o.Anchors, anchorShown{ChainID: a.ChainID, Member: a.Issuer, SignerKey: proof.FormatBinary(a.SignerKey),
			Height: a.Height, Time: a.Time.UTC().Format(timeLayout)})
	}
	for _, e := range res.Status {
		o.Status = append(o.Status, statusShown{Entry: e, Path: listPath(e.StatusListCredential)})
	}
	o.Verdict = res.Verdict.String()
	if res.Verdict != vc.Valid {
		o.Step = res.Step
		if res.Err != nil {
			o.Reason = res.Err.Error()
		}
	}
	return o
}

// listPath is the path of a status list URL on a Credence node.
func listPath(listURL string) string {
	u, err := url.Parse(listURL)
	if err != nil || !strings.HasPrefix(u.Path, statusListsPath) || strings.Count(strings.TrimPrefix(u.Path, statusListsPath), "/") != 1 {
		return ""
	}
	return u.EscapedPath()
}

// listStanding is what the page shows of one status entry, as JSON.
type listStanding struct {
	// Verified is true when the ledger's proof of the list's bits checked,
	// and, for a list its issuer signed, the signature and issuer too; Set
	// is then the entry's bit.
	Verified bool   `json:"verified"`
	Step     string `json:"step,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Set      bool   `json:"set"`
	Purpose  string `json:"purpose,omitempty"`
	Height   int64  `json:"height,omitempty"`
	Time     string `json:"time,omitempty"`
	// AgeSeconds is how old the ledger's state was at the check.
	AgeSeconds int64 `json:"age_seconds"`
}

// checkListStatus applies a served status list to a credential's entry:
// the issuer's signed list (vc.CheckStatus: signature, issuer, purpose,
// index), and the ledger's proof of the same height (the status list export,
// proof.VerifyRegistryExport against the genesis), which must hold the
// same bit: the issuer's word and the consortium's agree.
func checkListStatus(genesisJSON, entryJSON, listDoc, exportJSON []byte, issuer string, now time.Time) *listStanding {
	s := &listStanding{}
	fail := func(step string, err error) *listStanding {
		s.Verified, s.Step, s.Reason = false, step, err.Error()
		return s
	}
	trust, err := proof.TrustRootFromGenesis(genesisJSON)
	if err != nil {
		return fail(stepGenesis, err)
	}
	var entry vc.StatusEntry
	if err := json.Unmarshal(entryJSON, &entry); err != nil {
		return fail(vc.StepStatus, fmt.Errorf("status entry: %w", err))
	}
	s.Purpose = entry.StatusPurpose
	// A list no update of its issuer's signed yet (just created, or last
	// set by its sponsor) carries no proof: the ledger's proof alone
	// decides, as in credenced verify. A signed one must also check.
	var head struct {
		Proof json.RawMessage `json:"proof"`
	}
	signed := json.Unmarshal(listDoc, &head) == nil && len(head.Proof) > 0
	set := false
	if signed {
		if set, err = vc.CheckStatus(entry, listDoc, issuer, now); err != nil {
			return fail(vc.StepStatus, err)
		}
	}
	ex := &proof.RegistryExport{}
	if err := protojson.Unmarshal(exportJSON, ex); err != nil {
		return fail(vc.StepStatus, fmt.Errorf("the ledger's proof of the list: %w", err))
	}
	// Age is shown, not judged, as for a hash's status.
	bits, rr, err := proof.VerifyRegistryExport(ex, trust, 0, now)
	if err != nil {
		step, why := failure(err)
		return fail(step, fmt.Errorf("the ledger's proof of the list: %w", why))
	}
	parts := strings.Split(strings.TrimPrefix(listPath(entry.StatusListCredential), statusListsPath), "/")
	if len(parts) != 2 || rr.Issuer != unescape(parts[0]) || rr.ID != unescape(parts[1]) {
		return fail(vc.StepStatus, fmt.Errorf("the ledger's proof is of status list %s/%s, the credential's list is %s", rr.Issuer, rr.ID, entry.StatusListCredential))
	}
	if entry.StatusListIndex >= uint64(len(bits))*8 {
		return fail(vc.StepStatus, fmt.Errorf("index %d is past the ledger's list of %d entries", entry.StatusListIndex, len(bits)*8))
	}
	if rr.Purpose != entry.StatusPurpose {
		return fail(vc.StepStatus, fmt.Errorf("the credential's entry is for %q, the ledger's list is for %q", entry.StatusPurpose, rr.Purpose))
	}
	ledgerSet := proof.BitSet(bits, entry.StatusListIndex)
	if signed && ledgerSet != set {
		return fail(vc.StepStatus, errors.New("the issuer's signed list and the ledger's proof of it differ at the credential's index"))
	}
	set = ledgerSet
	s.Verified, s.Set = true, set
	s.Height, s.Time = rr.Height, rr.Time.UTC().Format(timeLayout)
	s.AgeSeconds = int64(now.Sub(rr.Time) / time.Second)
	return s
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
