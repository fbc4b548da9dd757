package vc

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/piprate/json-gold/ld"
)

// ErrUnknownContext is wrapped when a document names a JSON-LD context that
// is not bundled. Nothing is ever fetched: a verifier that went to the network
// would let whoever serves the context change what a signature means.
var ErrUnknownContext = errors.New("vc: JSON-LD context not bundled")

// ErrCanonicalize is wrapped when a document cannot be turned into RDF or
// canonicalized (invalid JSON-LD, undefined terms, too complex a graph).
var ErrCanonicalize = errors.New("vc: canonicalization failed")

//go:embed contexts/*.jsonld
var contextFS embed.FS

// bundledContexts maps each context URL to its embedded file. The files are
// byte copies of the published contexts; contexts/README.md has their
// sources and SHA-256.
var bundledContexts = map[string]string{
	"https://www.w3.org/ns/credentials/v2":             "credentials-v2.jsonld",
	"https://www.w3.org/ns/credentials/examples/v2":    "credentials-examples-v2.jsonld",
	"https://www.w3.org/2018/credentials/v1":           "credentials-v1.jsonld",
	"https://www.w3.org/2018/credentials/examples/v1":  "credentials-examples-v1.jsonld",
	"https://w3id.org/security/data-integrity/v2":      "data-integrity-v2.jsonld",
	"https://w3id.org/security/data-integrity/v1":      "data-integrity-v1.jsonld",
	"https://w3id.org/security/multikey/v1":            "multikey-v1.jsonld",
	"https://www.w3.org/ns/cid/v1":                     "cid-v1.jsonld",
	"https://www.w3.org/ns/credentials/status/v1":      "credentials-status-v1.jsonld",
	"https://w3id.org/vc/status-list/2021/v1":          "vc-status-list-2021-v1.jsonld",
	"https://w3id.org/security/suites/ed25519-2020/v1": "ed25519-2020-v1.jsonld",
	// Open Badges 3.0 (and CLR 2.0, which builds on it): what members issue.
	"https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json": "ob-v3p0-context-3.0.3.jsonld",
}

// contextLoader serves bundled contexts (plus any given with WithContext)
// and refuses every other URL.
type contextLoader struct {
	extra map[string][]byte
}

func (l contextLoader) LoadDocument(u string) (*ld.RemoteDocument, error) {
	var doc any
	if b, ok := l.extra[u]; ok {
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrUnknownContext, u, err)
		}
	} else if p, ok := parsedContexts()[u]; ok {
		if p.err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrUnknownContext, u, p.err)
		}
		// A copy: json-gold writes into the documents it loads (an
		// @import merges the importing context into the imported one), and
		// any document may @import a bundled context.
		doc = copyJSON(p.doc)
	} else {
		return nil, fmt.Errorf("%w: %s", ErrUnknownContext, u)
	}
	return &ld.RemoteDocument{DocumentURL: u, Document: doc}, nil
}

type parsedContext struct {
	doc any
	err error
}

// parsedContexts are the bundled contexts, parsed once: every RDFC
// canonicalization (status lists in CheckTx and FinalizeBlock among them)
// loads some of them.
var parsedContexts = sync.OnceValue(func() map[string]parsedContext {
	m := make(map[string]parsedContext, len(bundledContexts))
	for u, name := range bundledContexts {
		var p parsedContext
		b, err := contextFS.ReadFile("contexts/" + name)
		if err == nil {
			err = json.Unmarshal(b, &p.doc)
		}
		p.err = err
		m[u] = p
	}
	return m
})

// copyJSON deep-copies a value json.Unmarshal produced into an any.
func copyJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = copyJSON(x)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, x := range v {
			a[i] = copyJSON(x)
		}
		return a
	}
	return v // string, float64, bool, nil: immutable
}

// canonicalizeJSONLD converts a parsed JSON-LD document to RDF and returns
// its RDFC-1.0 canonical N-Quads.
func canonicalizeJSONLD(doc any, cfg *config) ([]byte, error) {
	opts := ld.NewJsonLdOptions("")
	opts.DocumentLoader = contextLoader{extra: cfg.contexts}
	opts.ProcessingMode = ld.JsonLd_1_1
	// Safe mode: a term the contexts do not define is an error instead of
	// silently dropped, so signed bytes cannot carry unsigned claims.
	opts.SafeMode = true
	proc := ld.NewJsonLdProcessor()
	expanded, err := proc.Expand(doc, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCanonicalize, unwrapLD(err))
	}
	if err := checkExpanded(expanded); err != nil {
		return nil, err
	}
	ds, err := proc.ToRDF(expanded, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCanonicalize, unwrapLD(err))
	}
	return canonicalizeDataset(ds.(*ld.RDFDataset), cfg.maxAmbiguousBlankNodes)
}

// checkExpanded refuses what JSON-LD to RDF would silently drop from an
// expanded document: relative (or otherwise not absolute) node ids, types and
// datatypes, malformed language tags, and @index/@direction, which RDF does
// not carry. Dropped data is not signed, yet travels with the document, so
// anyone could change it without breaking the proof. json-gold's safe mode
// covers undefined properties only; this covers the rest of the JSON-LD
// "safe mode" list that matters for credentials.
func checkExpanded(v any) error {
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			if err := checkExpanded(x); err != nil {
				return err
			}
		}
	case map[string]any:
		if _, isValue := v["@value"]; isValue {
			if t, ok := v["@type"].(string); ok && t != "@json" && !absoluteIRI(t) {
				return fmt.Errorf("%w: datatype %q is not an absolute IRI", ErrCanonicalize, t)
			}
			if l, ok := v["@language"].(string); ok && !languageTag(l) {
				return fmt.Errorf("%w: language tag %q is not well formed", ErrCanonicalize, l)
			}
			if _, ok := v["@direction"]; ok {
				return fmt.Errorf("%w: @direction is not carried into RDF", ErrCanonicalize)
			}
			if _, ok := v["@index"]; ok {
				return fmt.Errorf("%w: @index is not carried into RDF", ErrCanonicalize)
			}
			return nil // a @json literal holds arbitrary JSON; it is signed whole
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys) // report the same error for the same document
		for _, k := range keys {
			x := v[k]
			switch k {
			case "@id":
				if id, _ := x.(string); !absoluteIRI(id) && !strings.HasPrefix(id, "_:") {
					return fmt.Errorf("%w: node id %q is not an absolute IRI", ErrCanonicalize, id)
				}
			case "@type":
				types, ok := x.([]any)
				if !ok {
					types = []any{x}
				}
				for _, t := range types {
					if ts, _ := t.(string); !absoluteIRI(ts) && !strings.HasPrefix(ts, "_:") {
						return fmt.Errorf("%w: type %q is not an absolute IRI (undefined term?)", ErrCanonicalize, ts)
					}
				}
			case "@index", "@direction":
				return fmt.Errorf("%w: %s is not carried into RDF", ErrCanonicalize, k)
			default:
				if err := checkExpanded(x); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// absoluteIRI: a scheme (RFC 3986 §3.1), a colon, and no character N-Quads
// forbids in an IRI.
func absoluteIRI(s string) bool {
	scheme, _, ok := strings.Cut(s, ":")
	if !ok || scheme == "" || checkIRI(s) != nil {
		return false
	}
	for i, r := range scheme {
		alpha := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !alpha && (i == 0 || !(r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return false
		}
	}
	return true
}

// languageTag: BCP 47 shape, as RDF requires (letters, then dash-separated
// alphanumeric subtags of at most 8).
func languageTag(s string) bool {
	for i, sub := range strings.Split(s, "-") {
		if len(sub) == 0 || len(sub) > 8 {
			return false
		}
		for _, r := range sub {
			alpha := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
			if !alpha && (i == 0 || !(r >= '0' && r <= '9')) {
				return false
			}
		}
	}
	return true
}

// canonicalizeNQuads canonicalizes an N-Quads document (used by the RDFC-1.0
// test suite).
func canonicalizeNQuads(nq string, maxAmbiguous int) ([]byte, error) {
	ds, err := ld.ParseNQuads(nq)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCanonicalize, err)
	}
	return canonicalizeDataset(ds, maxAmbiguous)
}

func canonicalizeDataset(ds *ld.RDFDataset, maxAmbiguous int) ([]byte, error) {
	if err := checkTerms(ds); err != nil {
		return nil, err
	}
	if n := ambiguousBlankNodes(ds); n > maxAmbiguous {
		return nil, fmt.Errorf("%w: %d blank nodes share a first-degree hash (limit %d): n-degree hashing would be too costly",
			ErrCanonicalize, n, maxAmbiguous)
	}
	opts := ld.NewJsonLdOptions("")
	opts.Algorithm = ld.AlgorithmURDNA2015
	opts.Format = "application/n-quads"
	out, err := ld.NewJsonLdApi().Normalize(ds, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCanonicalize, err)
	}
	s, ok := out.(string)
	if !ok {
		return nil, fmt.Errorf("%w: unexpected normalizer output %T", ErrCanonicalize, out)
	}
	return []byte(s), nil
}

// ambiguousBlankNodes counts the blank nodes whose first-degree hash
// (RDFC-1.0 §4.6) is shared with another blank node. Only those enter the
// n-degree hashing step, whose cost grows factorially with their number (the
// "poison graph" attack); json-gold has no work limit of its own, so the
// count is bounded before it runs.
func ambiguousBlankNodes(ds *ld.RDFDataset) int {
	quadsOf := map[string][]*ld.Quad{}
	for _, quads := range ds.Graphs {
		for _, q := range quads {
			for _, n := range []ld.Node{q.Subject, q.Object, q.Graph} {
				if n != nil && ld.IsBlankNode(n) {
					id := n.GetValue()
					quadsOf[id] = append(quadsOf[id], q)
				}
			}
		}
	}
	count := map[[32]byte]int{}
	hashes := make(map[string][32]byte, len(quadsOf))
	for id, quads := range quadsOf {
		lines := make([]string, 0, len(quads))
		for _, q := range quads {
			lines = append(lines, firstDegreeLine(q, id))
		}
		sort.Strings(lines)
		h := sha256.Sum256([]byte(strings.Join(lines, "")))
		hashes[id] = h
		count[h]++
	}
	n := 0
	for _, h := range hashes {
		if count[h] > 1 {
			n++
		}
	}
	return n
}

// checkTerms refuses the terms json-gold would serialize differently from
// RDFC-1.0's canonical N-Quads. json-gold escapes only backslash, quote, LF, CR
// and TAB in literals (RDFC-1.0 also wants \b, \f and \u00XX for the other C0 controls
// and DEL) and backslash-escapes IRIs (RDFC-1.0 never escapes IRIs). Both
// show up in the hashes that label blank nodes and in the signed bytes, so a
// document carrying them would be signed over bytes no other implementation
// produces; refusing it is the only answer that cannot mislead.
func checkTerms(ds *ld.RDFDataset) error {
	for _, quads := range ds.Graphs {
		for _, q := range quads {
			for _, n := range []ld.Node{q.Subject, q.Predicate, q.Object, q.Graph} {
				if err := checkTerm(n); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func checkTerm(n ld.Node) error {
	var lit *ld.Literal
	switch v := n.(type) {
	case nil:
		return nil
	case ld.BlankNode, *ld.BlankNode:
		return nil
	case ld.Literal:
		lit = &v
	case *ld.Literal:
		lit = v
	default:
		return checkIRI(n.GetValue())
	}
	for _, r := range lit.Value {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f {
			return fmt.Errorf("%w: literal contains control character U+%04X, which the canonicalizer cannot serialize as RDFC-1.0 requires", ErrCanonicalize, r)
		}
	}
	if err := checkIRI(lit.Datatype); err != nil {
		return err
	}
	if lit.Language != "" && !languageTag(lit.Language) {
		return fmt.Errorf("%w: language tag %q is not well formed", ErrCanonicalize, lit.Language)
	}
	return nil
}

// checkIRI refuses characters N-Quads IRIREF excludes.
func checkIRI(s string) error {
	for _, r := range s {
		if r <= 0x20 || strings.ContainsRune("<>\"{}|^`\\", r) {
			return fmt.Errorf("%w: IRI %q contains %q, not allowed in an IRI", ErrCanonicalize, s, r)
		}
	}
	return nil
}

// firstDegreeLine serializes q with blank node id as _:a and every other
// blank node as _:z; any stable serialization works for counting collisions.
func firstDegreeLine(q *ld.Quad, id string) string {
	term := func(n ld.Node) string {
		if n == nil {
			return ""
		}
		if ld.IsBlankNode(n) {
			if n.GetValue() == id {
				return "_:a"
			}
			return "_:z"
		}
		switch lit := n.(type) {
		case ld.Literal:
			return fmt.Sprintf("%q^^%s@%s", lit.Value, lit.Datatype, lit.Language)
		case *ld.Literal:
			return fmt.Sprintf("%q^^%s@%s", lit.Value, lit.Datatype, lit.Language)
		}
		return "<" + n.GetValue() + ">"
	}
	var b bytes.Buffer
	for _, n := range []ld.Node{q.Subject, q.Predicate, q.Object, q.Graph} {
		b.WriteString(term(n))
		b.WriteByte(' ')
	}
	b.WriteByte('\n')
	return b.String()
}

// unwrapLD keeps json-gold's message but drops its wrapping of our loader
// errors so that errors.Is(err, ErrUnknownContext) holds.
func unwrapLD(err error) error {
	var lde *ld.JsonLdError
	if errors.As(err, &lde) {
		if inner, ok := lde.Details.(error); ok && errors.Is(inner, ErrUnknownContext) {
			return inner
		}
	}
	return err
}
