package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// A registry as a W3C Bitstring Status List credential (VC Data Model 2.0).
// Its ids are URNs of the chain, not URLs of the node that served it, so
// that every member's node serves the same document for the same height.
// The list is not signed by its issuer: what vouches for it is the state
// proof carried beside it (credenceRegistryExport), checked against the
// chain's genesis by proof.VerifyRegistryExport. VC 2.0's context maps an
// undefined term such as that one to its issuer-dependent vocabulary.

// statusListDocument is the JSON of a BitstringStatusListCredential.
type statusListDocument struct {
	Context           []string          `json:"@context"`
	ID                string            `json:"id"`
	Type              []string          `json:"type"`
	Issuer            string            `json:"issuer"`
	ValidFrom         string            `json:"validFrom"`
	CredentialSubject statusListSubject `json:"credentialSubject"`
	// Height is the chain height whose state the list is.
	Height int64 `json:"credenceHeight"`
	// Export is the registry export (protobuf JSON) that proves the list.
	Export json.RawMessage `json:"credenceRegistryExport"`
}

type statusListSubject struct {
	ID            string `json:"id"`
	Type          string `json:"type"`
	StatusPurpose string `json:"statusPurpose"`
	EncodedList   string `json:"encodedList"`
}

// StatusListPath is where a node serves a registry's status list credential,
// the same path on every node.
func StatusListPath(issuer, id string) string {
	return "/v1/statuslists/" + issuer + "/" + id
}

// StatusListID is the id of a registry's status list credential.
func StatusListID(chainID, issuer, id string) string {
	return fmt.Sprintf("urn:credence:%s:statuslist:%s:%s", chainID, issuer, id)
}

func (n *Node) statusListHandler(client pb.CredenceClient) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		issuer, id := r.PathValue("issuer"), r.PathValue("id")
		res, err := client.ExportRegistry(r.Context(), &pb.ExportRegistryRequest{Issuer: issuer, Id: id})
		if err != nil {
			writeError(w, err)
			return
		}
		ex := res.Export
		// The node checks what it is about to vouch for, and learns the
		// block time and purpose from the proven record.
		_, got, err := proof.VerifyRegistryExport(ex, n.trust, 0, time.Now())
		if err != nil {
			writeError(w, status.Errorf(codes.Internal, "this node's own registry export does not verify: %v", err))
			return
		}
		exJSON, err := protojson.Marshal(ex)
		if err != nil {
			writeError(w, status.Errorf(codes.Internal, "registry export: %v", err))
			return
		}
		docID := StatusListID(n.chainID, issuer, id)
		doc := statusListDocument{
			Context:   []string{"https://www.w3.org/ns/credentials/v2"},
			ID:        docID,
			Type:      []string{"VerifiableCredential", "BitstringStatusListCredential"},
			Issuer:    fmt.Sprintf("urn:credence:%s:issuer:%s", n.chainID, issuer),
			ValidFrom: got.Time.UTC().Format(time.RFC3339),
			CredentialSubject: statusListSubject{
				ID: docID + "#list", Type: "BitstringStatusList",
				StatusPurpose: got.Purpose, EncodedList: ex.EncodedList,
			},
			Height: ex.Height,
			Export: exJSON,
		}
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			writeError(w, status.Errorf(codes.Internal, "status list: %v", err))
			return
		}
		w.Header().Set("Content-Type", "application/vc+ld+json")
		w.Write(append(b, '\n'))
	})
}
