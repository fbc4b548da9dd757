package proof

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors/invalid from the valid vectors")

// stepFileForm is the expected "step" of an invalid vector that the file
// form already refuses (UnmarshalReceiptJSON), before any verification.
const stepFileForm = "file form"

// mutation is one named change to a valid vector; the invalid vector it
// makes must fail at step.
type mutation struct {
	name string
	step string
	// Exactly one of edit (on the decoded receipt) and text (on the file).
	edit func(tb testing.TB, r *Receipt)
	text func(file string) string
	// genesis, when set, replaces the source's genesis as the trust root.
	genesis string
}

// editHeader decodes, changes and re-encodes (canonically) a signed header.
func editHeader(tb testing.TB, raw *[]byte, f func(sh *signedHeader)) {
	tb.Helper()
	sh, err := decodeSignedHeader(*raw, DefaultMaxValidators)
	if err != nil {
		tb.Fatal(err)
	}
	f(sh)
	*raw = sh.encode()
}

// firstSig is the index of the first commit vote of a header.
func firstSig(tb testing.TB, sh *signedHeader, flag uint64) int {
	tb.Helper()
	for i, s := range sh.commit.sigs {
		if s.flag == flag {
			return i
		}
	}
	tb.Fatalf("no signature with flag %d", flag)
	return 0
}

func flipped(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0x01
	return c
}

// replaceOnce replaces the first old in s, which must be there.
func replaceOnce(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic("no " + old)
	}
	return strings.Replace(s, old, new, 1)
}

// The invalid vectors are made from four-validators/validator-link-partial-commit:
// five validators, one absent, one link from the four of genesis.
const invalidSource = "four-validators/validator-link-partial-commit"

var mutations = []mutation{
	{name: "version-3", step: stepFileForm, text: func(s string) string { return replaceOnce(s, `"version": 2`, `"version": 3`) }},
	{name: "chain-id-other", step: string(StepChain), edit: func(_ testing.TB, r *Receipt) { r.ChainId = "e2f" }},
	{name: "credential-hash-flipped", step: string(StepAuditPath), edit: func(_ testing.TB, r *Receipt) { r.CredentialHash = flipped(r.CredentialHash) }},
	{name: "leaf-index-1", step: string(StepAuditPath), edit: func(_ testing.TB, r *Receipt) { r.LeafIndex = 1 }},
	{name: "audit-path-extra-entry", step: string(StepAuditPath), edit: func(_ testing.TB, r *Receipt) { r.AuditPath = append(r.AuditPath, r.Batch.Root) }},
	{name: "batch-root-flipped", step: string(StepAuditPath), edit: func(_ testing.TB, r *Receipt) { r.Batch.Root = flipped(r.Batch.Root) }},
	{name: "batch-leaf-count-2", step: string(StepAuditPath), edit: func(_ testing.TB, r *Receipt) { r.Batch.LeafCount = 2 }},
	{name: "batch-issuer-other", step: string(StepBatchProof), edit: func(_ testing.TB, r *Receipt) { r.Batch.Issuer = "member-1-registrar" }},
	{name: "batch-seq-plus-one", step: string(StepBatchProof), edit: func(_ testing.TB, r *Receipt) { r.Batch.Seq++ }},
	{name: "batch-signer-key-flipped", step: string(StepBatchProof), edit: func(_ testing.TB, r *Receipt) { r.Batch.SignerKey = flipped(r.Batch.SignerKey) }},
	{name: "batch-time-plus-1ns", step: string(StepBatchProof), edit: func(_ testing.TB, r *Receipt) { r.Batch.TimeUnixNano++ }},
	{name: "batch-height-minus-one", step: string(StepHeader), edit: func(_ testing.TB, r *Receipt) { r.Batch.Height-- }},
	{name: "batch-proof-flipped", step: string(StepBatchProof), edit: func(_ testing.TB, r *Receipt) { r.BatchProof = flipped(r.BatchProof) }},
	{name: "header-app-hash-flipped", step: string(StepHeader), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) { sh.header.appHash = flipped(sh.header.appHash) })
	}},
	{name: "header-consensus-hash-flipped-block-id-following", step: string(StepCommit), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) {
			sh.header.consensusHash = flipped(sh.header.consensusHash)
			h := sh.header.hash()
			sh.commit.blockID.hash = h[:]
		})
	}},
	{name: "header-not-canonical", step: string(StepHeader), edit: func(_ testing.TB, r *Receipt) {
		// The chain id field again at the end of the header: same value,
		// another encoding.
		r.SignedHeader = append(bytes.Clone(r.SignedHeader), 0x0a, 0x00)
	}},
	{name: "header-chain-id-other", step: string(StepHeader), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) { sh.header.chainID = "e2f" })
	}},
	{name: "commit-signature-flipped", step: string(StepCommit), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) {
			i := len(sh.commit.sigs) - 1
			if sh.commit.sigs[i].flag == flagAbsent {
				i--
			}
			sh.commit.sigs[i].signature = flipped(sh.commit.sigs[i].signature)
		})
	}},
	{name: "commit-timestamp-plus-1ns", step: string(StepCommit), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) {
			i := len(sh.commit.sigs) - 1
			if sh.commit.sigs[i].flag == flagAbsent {
				i--
			}
			sh.commit.sigs[i].time.nanos++
		})
	}},
	{name: "commit-vote-made-nil", step: string(StepCommit), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) { sh.commit.sigs[firstSig(tb, sh, flagCommit)].flag = flagNil })
	}},
	{name: "commit-vote-made-absent", step: string(StepCommit), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) { sh.commit.sigs[firstSig(tb, sh, flagCommit)].flag = flagAbsent })
	}},
	{name: "commit-absent-with-timestamp", step: string(StepCommit), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) { sh.commit.sigs[firstSig(tb, sh, flagAbsent)].time = timestamp{} })
	}},
	{name: "commit-absent-given-a-vote", step: string(StepCommit), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) {
			a, c := firstSig(tb, sh, flagAbsent), firstSig(tb, sh, flagCommit)
			sh.commit.sigs[a] = sh.commit.sigs[c]
		})
	}},
	{name: "commit-flag-unknown", step: string(StepCommit), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) { sh.commit.sigs[firstSig(tb, sh, flagCommit)].flag = 4 })
	}},
	{name: "commit-signatures-swapped", step: string(StepCommit), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) { sh.commit.sigs[0], sh.commit.sigs[1] = sh.commit.sigs[1], sh.commit.sigs[0] })
	}},
	{name: "commit-extra-signature", step: string(StepCommit), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) { sh.commit.sigs = append(sh.commit.sigs, sh.commit.sigs[0]) })
	}},
	{name: "commit-round-plus-one", step: string(StepCommit), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) { sh.commit.round++ })
	}},
	{name: "commit-part-set-total-plus-one", step: string(StepCommit), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.SignedHeader, func(sh *signedHeader) { sh.commit.blockID.parts.total++ })
	}},
	{name: "validators-swapped", step: string(StepValidators), edit: func(_ testing.TB, r *Receipt) {
		r.Validators[0], r.Validators[1] = r.Validators[1], r.Validators[0]
	}},
	{name: "validator-listed-twice", step: string(StepValidators), edit: func(_ testing.TB, r *Receipt) {
		r.Validators = append(r.Validators, r.Validators[len(r.Validators)-1])
	}},
	{name: "validator-power-plus-one", step: string(StepValidators), edit: func(_ testing.TB, r *Receipt) { r.Validators[0].VotingPower++ }},
	{name: "validator-dropped", step: string(StepValidators), edit: func(_ testing.TB, r *Receipt) { r.Validators = r.Validators[:len(r.Validators)-1] }},
	{name: "genesis-of-another-chain", step: string(StepTrustRoot), genesis: "one-validator/genesis.json",
		edit: func(testing.TB, *Receipt) {}},
	{name: "link-removed", step: string(StepTrustRoot), edit: func(_ testing.TB, r *Receipt) { r.ValidatorLinks = nil }},
	{name: "link-repeated", step: string(StepTrustRoot), edit: func(_ testing.TB, r *Receipt) {
		r.ValidatorLinks = append(r.ValidatorLinks, r.ValidatorLinks[0])
	}},
	{name: "link-signature-flipped", step: string(StepTrustRoot), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.ValidatorLinks[0].SignedHeader, func(sh *signedHeader) {
			i := firstSig(tb, sh, flagCommit)
			sh.commit.sigs[i].signature = flipped(sh.commit.sigs[i].signature)
		})
	}},
	{name: "link-vote-made-nil", step: string(StepTrustRoot), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.ValidatorLinks[0].SignedHeader, func(sh *signedHeader) { sh.commit.sigs[firstSig(tb, sh, flagCommit)].flag = flagNil })
	}},
	{name: "link-timestamp-plus-1ns", step: string(StepTrustRoot), edit: func(tb testing.TB, r *Receipt) {
		editHeader(tb, &r.ValidatorLinks[0].SignedHeader, func(sh *signedHeader) { sh.commit.sigs[firstSig(tb, sh, flagCommit)].time.nanos++ })
	}},
	{name: "link-next-validator-power-plus-one", step: string(StepTrustRoot), edit: func(_ testing.TB, r *Receipt) {
		r.ValidatorLinks[0].NextValidators[0].VotingPower++
	}},
	{name: "link-is-the-receipt-header", step: string(StepTrustRoot), edit: func(_ testing.TB, r *Receipt) {
		r.ValidatorLinks[0].SignedHeader = r.SignedHeader
	}},
	// The file form: each a spelling the rules of docs/receipt.md refuse.
	{name: "json-hex-value", step: stepFileForm, text: func(s string) string {
		return replaceOnce(s, `"credential_hash": "z`, `"credential_hash": "0x`)
	}},
	{name: "json-base64-multibase", step: stepFileForm, text: func(s string) string {
		return replaceOnce(s, `"root": "z`, `"root": "u`)
	}},
	{name: "json-space-in-value", step: stepFileForm, text: func(s string) string {
		return replaceOnce(s, `"credential_hash": "z`, `"credential_hash": " z`)
	}},
	{name: "json-not-base58-digit", step: stepFileForm, text: func(s string) string {
		return replaceOnce(s, `"credential_hash": "z`, `"credential_hash": "z0`)
	}},
	{name: "json-time-offset", step: stepFileForm, text: func(s string) string {
		i := strings.Index(s, `"time": "`) + len(`"time": "`)
		j := i + strings.Index(s[i:], `Z"`)
		return s[:j] + `+00:00"` + s[j+2:]
	}},
	{name: "json-time-trailing-zero", step: stepFileForm, text: func(s string) string {
		i := strings.Index(s, `"time": "`) + len(`"time": "`)
		j := i + strings.Index(s[i:], `Z"`)
		return s[:j] + `0Z"` + s[j+2:]
	}},
	{name: "json-duplicate-key", step: stepFileForm, text: func(s string) string {
		return replaceOnce(s, `"version": 2,`, `"version": 2, "version": 2,`)
	}},
	{name: "json-key-case", step: stepFileForm, text: func(s string) string { return replaceOnce(s, `"chain_id"`, `"Chain_Id"`) }},
	{name: "json-unknown-key", step: stepFileForm, text: func(s string) string {
		return replaceOnce(s, `"version": 2,`, `"version": 2, "note": "",`)
	}},
	{name: "json-null-audit-path", step: stepFileForm, text: func(s string) string {
		return replaceOnce(s, `"audit_path": []`, `"audit_path": null`)
	}},
	{name: "json-missing-leaf-index", step: stepFileForm, text: func(s string) string {
		return replaceOnce(s, `"leaf_index": 0,`, ``)
	}},
	{name: "json-leaf-index-float", step: stepFileForm, text: func(s string) string {
		return replaceOnce(s, `"leaf_index": 0,`, `"leaf_index": 0.0,`)
	}},
	{name: "json-trailing-data", step: stepFileForm, text: func(s string) string { return s + "{}\n" }},
}

// invalidVector is what the .want file beside an invalid receipt says.
type invalidVector struct {
	Mutation string `json:"mutation"`
	Source   string `json:"source"`
	Genesis  string `json:"genesis"`
	Step     string `json:"step"`
}

func makeInvalid(tb testing.TB, src *vector, m mutation) []byte {
	tb.Helper()
	if m.text != nil {
		return []byte(m.text(string(src.file)))
	}
	r := src.receipt(tb)
	m.edit(tb, r)
	b, err := MarshalReceiptJSON(r)
	if err != nil {
		tb.Fatal(err)
	}
	return append(b, '\n')
}

// TestInvalidVectors walks testdata/vectors/invalid: each receipt fails at
// the step its .want file names. The files are what the mutations above
// make of the source vector (-update rewrites them), so the walk also
// checks that they are still exactly that.
func TestInvalidVectors(t *testing.T) {
	dir := filepath.Join(vectorDir, "invalid")
	src := vectorNamed(t, invalidSource)
	if *update {
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, m := range mutations {
			genesis := m.genesis
			if genesis == "" {
				genesis = "four-validators/genesis.json"
			}
			want, err := json.MarshalIndent(invalidVector{Mutation: m.name, Source: invalidSource + ".receipt.json",
				Genesis: genesis, Step: m.step}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, m.name+".receipt.json"), makeInvalid(t, src, m), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, m.name+".want"), append(want, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.want"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(mutations) {
		t.Errorf("%d invalid vectors, %d mutations (run with -update)", len(files), len(mutations))
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			var want invalidVector
			if err := json.Unmarshal(readTestdata(t, filepath.Join("vectors", "invalid", m.name+".want")), &want); err != nil {
				t.Fatal(err)
			}
			if want.Step != m.step || want.Mutation != m.name {
				t.Fatalf(".want says %+v, the mutation %s %q", want, m.name, m.step)
			}
			file := readTestdata(t, filepath.Join("vectors", "invalid", m.name+".receipt.json"))
			if !bytes.Equal(file, makeInvalid(t, src, m)) {
				t.Fatal("the file is not what the mutation makes of the source (run with -update)")
			}
			trust := trustFromFile(t, filepath.Join(vectorDir, want.Genesis))
			r, err := UnmarshalReceiptJSON(file, Limits{})
			if want.Step == stepFileForm {
				if err == nil {
					t.Fatal("the file form is accepted")
				}
				return
			}
			if err != nil {
				t.Fatalf("file form refused: %v", err)
			}
			_, p, err := safeVerify(r, trust)
			if p != nil {
				t.Fatalf("Verify panicked: %v", p)
			}
			if got := stepOf(t, err); string(got) != want.Step {
				t.Errorf("failed at %q (%v), want %q", got, err, want.Step)
			}
		})
	}
	names := make([]string, len(mutations))
	for i, m := range mutations {
		names[i] = m.name
	}
	if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
		t.Error("two mutations share a name")
	}
}
