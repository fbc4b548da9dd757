// Package proof checks Credence receipts and status answers offline, and
// holds what both the verifier and the node must agree on: the receipt
// format, the Merkle tree of a batch, the state keys.
//
// # Trust model
//
// A verifier trusts one thing: the chain's genesis file, read by
// TrustRootFromGenesis into a TrustRoot (the chain id and the genesis
// validator set). Verify accepts a receipt when more than 2/3 of the
// voting power of a validator set signed a header whose application state
// holds the batch record, and that set is the genesis set or follows from
// it through the validator-set changes the receipt carries, each signed by
// more than 2/3 of the set before it. This holds as long as no set along
// the way had a third or more of its power faulty. Nothing is fetched and
// nothing expires: a receipt that verifies today verifies forever.
//
// # What Verify checks
//
// In order, each failure a *VerifyError naming its Step and wrapping
// ErrInvalid: the format and version (version 1 wraps ErrOldVersion), the
// chain id; the RFC 6962 audit path from the credential hash to the batch
// root; the signed header of height batch.height+1 in canonical encoding,
// its hash equal to the block id its commit signs; the ICS23 proof of the
// batch record under that header's app hash; the listed validator set and
// its hash; the validator links from the genesis set to that set; every
// signature of every commit (the header's and each link's), with its flag
// and timestamp, and more than 2/3 of the power for the block. Every byte
// of a receipt is bound by one of these checks or refused.
//
// CometBFT's header hash, validator-set hash, vote sign-bytes and commit
// verification are implemented here from docs/receipt.md, which specifies
// every byte, and checked against CometBFT in this package's tests; the
// package itself imports no CometBFT, no network and no database.
//
// Receipt files are read by UnmarshalReceiptJSON under Limits, which bound
// the file size, the validators and the links a receipt may carry.
package proof
