package app

import (
	"encoding/binary"
	"errors"
	"fmt"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// Governance: a member proposes an action, members vote with their power,
// and the action applies in the block where more than 2/3 of the power has
// voted yes. A proposal not decided within proposal_ttl_blocks expires.
// State keys: proof.ProposalKey, proof.OpenProposalKey (the end-of-block
// sweep of expired proposals), proof.KeyNextProposal.
const (
	maxDescription = 1000
	// maxPower bounds a member's voting power so that the total stays far
	// below CometBFT's limit (2^60) whatever the number of members.
	maxPower = 1_000_000_000
	// maxProposalTTL bounds proposal_ttl_blocks (years at a block a second)
	// so that expiry heights cannot overflow.
	maxProposalTTL = 100_000_000
)

// ProposalKey is the state key of proposal id, for queries.
func ProposalKey(id uint64) []byte { return proof.ProposalKey(id) }

// Propose: a member opens a proposal, with its own yes.
type proposeMsg struct{ *pb.Propose }

func (p proposeMsg) validate(uint64) error {
	if len(p.Description) > maxDescription {
		return fmt.Errorf("%w: description is %d bytes, at most %d", ErrMalformed, len(p.Description), maxDescription)
	}
	switch a := p.Action.(type) {
	case *pb.Propose_AddMember:
		m := a.AddMember
		if err := ValidID(m.Id); err != nil {
			return fmt.Errorf("%w: add_member.id: %v", ErrMalformed, err)
		}
		if err := checkPublicKey(m.AdminKey); err != nil {
			return fmt.Errorf("%w: add_member.admin_key: %v", ErrMalformed, err)
		}
		if err := checkPublicKey(m.ValidatorKey); err != nil {
			return fmt.Errorf("%w: add_member.validator_key: %v", ErrMalformed, err)
		}
		if m.Power <= 0 || m.Power > maxPower {
			return fmt.Errorf("%w: add_member.power must be 1 to %d", ErrMalformed, maxPower)
		}
	case *pb.Propose_RemoveMember:
		if err := ValidID(a.RemoveMember.Id); err != nil {
			return fmt.Errorf("%w: remove_member.id: %v", ErrMalformed, err)
		}
	case *pb.Propose_ChangePower:
		if err := ValidID(a.ChangePower.Id); err != nil {
			return fmt.Errorf("%w: change_power.id: %v", ErrMalformed, err)
		}
		if a.ChangePower.Power <= 0 || a.ChangePower.Power > maxPower {
			return fmt.Errorf("%w: change_power.power must be 1 to %d (remove a member to take its power away)", ErrMalformed, maxPower)
		}
	case *pb.Propose_SetIssuerStatus:
		if err := ValidID(a.SetIssuerStatus.Issuer); err != nil {
			return fmt.Errorf("%w: set_issuer_status.issuer: %v", ErrMalformed, err)
		}
		switch a.SetIssuerStatus.Status {
		case pb.IssuerStatus_ISSUER_STATUS_ACTIVE, pb.IssuerStatus_ISSUER_STATUS_SUSPENDED:
		default:
			return fmt.Errorf("%w: set_issuer_status.status must be ACTIVE or SUSPENDED", ErrMalformed)
		}
	case *pb.Propose_ChangeParams:
		c := a.ChangeParams
		if c.MaxBatchHashes == 0 && c.ProposalTtlBlocks == 0 {
			return fmt.Errorf("%w: change_params changes nothing", ErrMalformed)
		}
		if c.ProposalTtlBlocks < 0 || c.ProposalTtlBlocks > maxProposalTTL {
			return fmt.Errorf("%w: change_params.proposal_ttl_blocks must be 0 (unchanged) to %d", ErrMalformed, maxProposalTTL)
		}
		if c.MaxBatchHashes > MaxBatchHashesLimit {
			return fmt.Errorf("%w: change_params.max_batch_hashes %d does not fit in a transaction; at most %d", ErrMalformed, c.MaxBatchHashes, MaxBatchHashesLimit)
		}
	case *pb.Propose_Upgrade:
		if err := validateUpgrade(a.Upgrade); err != nil {
			return err
		}
	case *pb.Propose_CancelUpgrade:
		if err := ValidID(a.CancelUpgrade.Name); err != nil {
			return fmt.Errorf("%w: cancel_upgrade.name: %v", ErrMalformed, err)
		}
	default:
		return fmt.Errorf("%w: propose has no action", ErrMalformed)
	}
	return nil
}

func (proposeMsg) sequenceKey(body *pb.TxBody) []byte { return proof.MemberSequenceKey(body.Signer) }

// check: the action must make sense in the state it is proposed in; it is
// checked again when it passes.
func (p proposeMsg) check(c *checker, tx *decodedTx) error {
	if err := c.memberSigned(tx); err != nil {
		return err
	}
	if c.rules.proposalNeedsDescription && p.Description == "" {
		return fmt.Errorf("%w: a proposal needs a description", ErrRejected)
	}
	switch a := p.Action.(type) {
	case *pb.Propose_AddMember:
		if m, err := c.member(a.AddMember.Id); err != nil || m != nil {
			return firstErr(err, fmt.Errorf("%w: %q is already a member", ErrRejected, a.AddMember.Id))
		}
	case *pb.Propose_RemoveMember:
		if m, err := c.member(a.RemoveMember.Id); err != nil || m == nil {
			return firstErr(err, fmt.Errorf("%w: %q is not a member", ErrRejected, a.RemoveMember.Id))
		}
	case *pb.Propose_ChangePower:
		if m, err := c.member(a.ChangePower.Id); err != nil || m == nil {
			return firstErr(err, fmt.Errorf("%w: %q is not a member", ErrRejected, a.ChangePower.Id))
		}
	case *pb.Propose_SetIssuerStatus:
		if _, err := c.issuer(a.SetIssuerStatus.Issuer); err != nil {
			return err
		}
	case *pb.Propose_Upgrade:
		return checkUpgrade(c.st, a.Upgrade, c.height)
	case *pb.Propose_CancelUpgrade:
		return checkCancel(c.st, a.CancelUpgrade.Name)
	}
	return nil
}

// apply opens the proposal with the proposer's yes, and tallies it: on a
// chain where the proposer alone holds more than 2/3, it passes at once.
func (p proposeMsg) apply(a *App, tx *decodedTx, b execBlock) ([]abci.Event, error) {
	var next uint64 = 1
	if raw, err := a.tree.Get([]byte(proof.KeyNextProposal)); err != nil {
		return nil, err
	} else if len(raw) == 8 {
		next = binary.BigEndian.Uint64(raw)
	}
	if _, err := a.tree.Set([]byte(proof.KeyNextProposal), binary.BigEndian.AppendUint64(nil, next+1)); err != nil {
		return nil, err
	}
	params, err := a.loadParams()
	if err != nil {
		return nil, err
	}
	body, err := deterministic.Marshal(p.Propose)
	if err != nil {
		return nil, err
	}
	proposer := tx.body.Signer
	prop := &pb.Proposal{
		Id: next, Proposer: proposer, Propose: body, SubmitHeight: b.height,
		ExpiresHeight: b.height + params.ProposalTtlBlocks, Yes: []string{proposer},
		Status: pb.ProposalStatus_PROPOSAL_STATUS_OPEN,
	}
	if _, err := a.tree.Set(proof.OpenProposalKey(prop.ExpiresHeight, prop.Id), []byte{}); err != nil {
		return nil, err
	}
	if err := a.tally(prop, p.Propose, b.height); err != nil {
		return nil, err
	}
	return []abci.Event{{Type: "proposal", Attributes: []abci.EventAttribute{
		{Key: "id", Value: fmt.Sprint(prop.Id), Index: true},
		{Key: "status", Value: prop.Status.String()},
	}}}, nil
}

// Vote: a member that has not voted on an open proposal votes yes or no.
type voteMsg struct{ *pb.Vote }

func (v voteMsg) validate(uint64) error {
	if v.ProposalId == 0 {
		return fmt.Errorf("%w: vote.proposal_id must be positive", ErrMalformed)
	}
	return nil
}

func (voteMsg) sequenceKey(body *pb.TxBody) []byte { return proof.MemberSequenceKey(body.Signer) }

func (v voteMsg) check(c *checker, tx *decodedTx) error {
	if err := c.memberSigned(tx); err != nil {
		return err
	}
	member := tx.body.Signer
	p, err := c.proposal(v.ProposalId)
	if err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("%w: no proposal %d", ErrRejected, v.ProposalId)
	}
	if p.Status != pb.ProposalStatus_PROPOSAL_STATUS_OPEN {
		return fmt.Errorf("%w: proposal %d is %s", ErrRejected, v.ProposalId, p.Status)
	}
	if c.height > p.ExpiresHeight {
		return fmt.Errorf("%w: proposal %d expired at height %d", ErrRejected, v.ProposalId, p.ExpiresHeight)
	}
	for _, m := range append(p.Yes, p.No...) {
		if m == member {
			return fmt.Errorf("%w: %q already voted on proposal %d", ErrRejected, member, v.ProposalId)
		}
	}
	return nil
}

// apply records the vote and tallies the proposal.
func (v voteMsg) apply(a *App, tx *decodedTx, b execBlock) ([]abci.Event, error) {
	member := tx.body.Signer
	prop, err := (&checker{st: a.tree}).proposal(v.ProposalId)
	if err != nil {
		return nil, err
	}
	if v.Yes {
		prop.Yes = append(prop.Yes, member)
	} else {
		prop.No = append(prop.No, member)
	}
	var p pb.Propose
	if err := proto.Unmarshal(prop.Propose, &p); err != nil {
		return nil, err
	}
	if err := a.tally(prop, &p, b.height); err != nil {
		return nil, err
	}
	return []abci.Event{{Type: "vote", Attributes: []abci.EventAttribute{
		{Key: "proposal", Value: fmt.Sprint(prop.Id), Index: true},
		{Key: "member", Value: member},
		{Key: "status", Value: prop.Status.String()},
	}}}, nil
}

func (c *checker) member(id string) (*pb.Member, error) {
	var m pb.Member
	found, err := c.get(proof.MemberKey(id), &m)
	if err != nil || !found {
		return nil, err
	}
	return &m, nil
}

// memberSigned: governance is signed by a member's admin key.
func (c *checker) memberSigned(tx *decodedTx) error {
	m, err := c.member(tx.body.Signer)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("%w: %q is not a member", ErrUnknown, tx.body.Signer)
	}
	if string(m.AdminKey) != string(tx.pubKey) {
		return fmt.Errorf("%w: not signed with the admin key of member %q", ErrUnauthorized, tx.body.Signer)
	}
	return nil
}

func firstErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

func (c *checker) proposal(id uint64) (*pb.Proposal, error) {
	var p pb.Proposal
	found, err := c.get(proof.ProposalKey(id), &p)
	if err != nil || !found {
		return nil, err
	}
	return &p, nil
}

// power sums, in one pass over the members, the voting power of the
// current members among yesIDs, among noIDs, and of all members. Members are
// read in key order: the sums are the same on every node.
func (a *App) power(yesIDs, noIDs []string) (yes, no, total int64, err error) {
	vote := make(map[string]int, len(yesIDs)+len(noIDs))
	for _, id := range yesIDs {
		vote[id] = 1
	}
	for _, id := range noIDs {
		vote[id] = -1
	}
	err = scan(a.tree, proof.PrefixMember, func(_, v []byte) error {
		var m pb.Member
		if err := proto.Unmarshal(v, &m); err != nil {
			return err
		}
		total += m.Power
		switch vote[m.Id] {
		case 1:
			yes += m.Power
		case -1:
			no += m.Power
		}
		return nil
	})
	return yes, no, total, err
}

// tally decides an open proposal: passed with more than 2/3 of the power
// voting yes, rejected once that can no longer happen. It saves it.
func (a *App) tally(prop *pb.Proposal, p *pb.Propose, height int64) error {
	yes, no, total, err := a.power(prop.Yes, prop.No)
	if err != nil {
		return err
	}
	switch {
	case 3*yes > 2*total:
		prop.Status = pb.ProposalStatus_PROPOSAL_STATUS_PASSED
		outcome, err := a.execute(p, height)
		if err != nil {
			return err
		}
		if outcome != "" {
			prop.Status = pb.ProposalStatus_PROPOSAL_STATUS_FAILED
			prop.Outcome = outcome
		}
	case 3*(total-no) <= 2*total:
		prop.Status = pb.ProposalStatus_PROPOSAL_STATUS_REJECTED
		prop.Outcome = "more than 1/3 of the voting power voted no"
	}
	if prop.Status != pb.ProposalStatus_PROPOSAL_STATUS_OPEN {
		prop.DecidedHeight = height
		if _, _, err := a.tree.Remove(proof.OpenProposalKey(prop.ExpiresHeight, prop.Id)); err != nil {
			return err
		}
	}
	return a.put(proof.ProposalKey(prop.Id), prop)
}

// outcomeOf is execute's answer to a check that failed: a refusal
// (ErrRejected) is the proposal's outcome, any other error the block's.
func outcomeOf(err error) (string, error) {
	if errors.Is(err, ErrRejected) {
		return err.Error(), nil
	}
	return "", err
}

// execute applies a passed proposal's action. A non-empty outcome says why
// it could not apply (the state moved since it was proposed); the proposal
// then fails without changing anything.
func (a *App) execute(p *pb.Propose, height int64) (string, error) {
	c := &checker{st: a.tree}
	switch x := p.Action.(type) {
	case *pb.Propose_AddMember:
		m := x.AddMember
		if old, err := c.member(m.Id); err != nil || old != nil {
			return fmt.Sprintf("%q is already a member", m.Id), err
		}
		if used, err := a.validatorKeyUsed(m.ValidatorKey); err != nil || used {
			return "validator key already belongs to a member", err
		}
		if err := a.put(proof.MemberKey(m.Id), &pb.Member{Id: m.Id, Name: m.Name, AdminKey: m.AdminKey, ValidatorKey: m.ValidatorKey, Power: m.Power}); err != nil {
			return "", err
		}
		a.addValUpdate(m.ValidatorKey, m.Power, false)
	case *pb.Propose_RemoveMember:
		m, err := c.member(x.RemoveMember.Id)
		if err != nil || m == nil {
			return fmt.Sprintf("%q is not a member", x.RemoveMember.Id), err
		}
		_, _, total, err := a.power(nil, nil)
		if err != nil {
			return "", err
		}
		if total == m.Power {
			return "the last member cannot be removed", nil
		}
		if _, _, err := a.tree.Remove(proof.MemberKey(m.Id)); err != nil {
			return "", err
		}
		a.addValUpdate(m.ValidatorKey, 0, true)
		if err := a.suspendSponsored(m.Id); err != nil {
			return "", err
		}
	case *pb.Propose_ChangePower:
		m, err := c.member(x.ChangePower.Id)
		if err != nil || m == nil {
			return fmt.Sprintf("%q is not a member", x.ChangePower.Id), err
		}
		m.Power = x.ChangePower.Power
		if err := a.put(proof.MemberKey(m.Id), m); err != nil {
			return "", err
		}
		a.addValUpdate(m.ValidatorKey, m.Power, true)
	case *pb.Propose_SetIssuerStatus:
		is, err := c.issuer(x.SetIssuerStatus.Issuer)
		if errors.Is(err, ErrUnknown) {
			return fmt.Sprintf("issuer %q is not registered", x.SetIssuerStatus.Issuer), nil
		}
		if err != nil {
			return "", err
		}
		is.Status = x.SetIssuerStatus.Status
		if err := a.put(proof.IssuerKey(is.Id), is); err != nil {
			return "", err
		}
	case *pb.Propose_ChangeParams:
		params, err := a.loadParams()
		if err != nil {
			return "", err
		}
		if x.ChangeParams.MaxBatchHashes != 0 {
			params.MaxBatchHashes = x.ChangeParams.MaxBatchHashes
		}
		if x.ChangeParams.ProposalTtlBlocks != 0 {
			params.ProposalTtlBlocks = x.ChangeParams.ProposalTtlBlocks
		}
		if err := a.put([]byte(proof.KeyParams), params); err != nil {
			return "", err
		}
		a.params = params
		// Transactions decoded under the old limit are decoded again.
		a.decoded.reset()
	case *pb.Propose_Upgrade:
		// A later plan replaces a pending one: the consortium decides one
		// next version at a time.
		if err := checkUpgrade(a.tree, x.Upgrade, height); err != nil {
			return outcomeOf(err)
		}
		if err := a.put([]byte(proof.KeyUpgradePlan), x.Upgrade); err != nil {
			return "", err
		}
	case *pb.Propose_CancelUpgrade:
		if err := checkCancel(a.tree, x.CancelUpgrade.Name); err != nil {
			return outcomeOf(err)
		}
		if _, _, err := a.tree.Remove([]byte(proof.KeyUpgradePlan)); err != nil {
			return "", err
		}
	}
	return "", nil
}

func (a *App) validatorKeyUsed(key []byte) (bool, error) {
	used := false
	err := scan(a.tree, proof.PrefixMember, func(_, v []byte) error {
		var m pb.Member
		if err := proto.Unmarshal(v, &m); err != nil {
			return err
		}
		used = used || string(m.ValidatorKey) == string(key)
		return nil
	})
	return used, err
}

// suspendSponsored suspends the issuers of a member that leaves: nobody
// vouches for them any more.
func (a *App) suspendSponsored(member string) error {
	var changed []*pb.Issuer
	err := scan(a.tree, proof.PrefixIssuer, func(_, v []byte) error {
		var is pb.Issuer
		if err := proto.Unmarshal(v, &is); err != nil {
			return err
		}
		if is.Sponsor == member && is.Status == pb.IssuerStatus_ISSUER_STATUS_ACTIVE {
			is.Status = pb.IssuerStatus_ISSUER_STATUS_SUSPENDED
			changed = append(changed, &is)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, is := range changed {
		if err := a.put(proof.IssuerKey(is.Id), is); err != nil {
			return err
		}
	}
	return nil
}

// addValUpdate records a validator change of the block, replacing an
// earlier one for the same key: CometBFT refuses two updates of one
// validator in a block. wasValidator says whether the key validated before
// this block's first update of it.
func (a *App) addValUpdate(pubKey []byte, power int64, wasValidator bool) {
	u := abci.Ed25519ValidatorUpdate(pubKey, power)
	for i := range a.valUpdates {
		if a.valUpdates[i].PubKey.Equal(u.PubKey) {
			a.valUpdates[i].Power = power
			return
		}
	}
	a.valUpdates = append(a.valUpdates, u)
	a.valWasSet = append(a.valWasSet, wasValidator)
}

// finalValUpdates drops the removal of a key that was not a validator when
// the block began (added and removed within it): CometBFT halts on the
// removal of a validator it does not hold.
func (a *App) finalValUpdates() []abci.ValidatorUpdate {
	var out []abci.ValidatorUpdate
	for i, u := range a.valUpdates {
		if u.Power == 0 && !a.valWasSet[i] {
			continue
		}
		out = append(out, u)
	}
	return out
}

// expireProposals closes the open proposals whose time ran out before
// height, oldest first.
func (a *App) expireProposals(height int64) error {
	it, err := a.tree.Iterator([]byte(proof.PrefixOpenProposal), proof.OpenProposalKey(height, 0), true)
	if err != nil {
		return err
	}
	var ids []uint64
	for ; it.Valid(); it.Next() {
		k := it.Key()
		ids = append(ids, binary.BigEndian.Uint64(k[len(k)-8:]))
	}
	if err := it.Close(); err != nil {
		return err
	}
	c := &checker{st: a.tree}
	for _, id := range ids {
		p, err := c.proposal(id)
		if err != nil || p == nil {
			return firstErr(err, fmt.Errorf("open proposal %d has no record", id))
		}
		if _, _, err := a.tree.Remove(proof.OpenProposalKey(p.ExpiresHeight, id)); err != nil {
			return err
		}
		p.Status = pb.ProposalStatus_PROPOSAL_STATUS_EXPIRED
		p.DecidedHeight = height
		p.Outcome = "expired without more than 2/3 of the voting power voting yes"
		if err := a.put(proof.ProposalKey(id), p); err != nil {
			return err
		}
	}
	return nil
}
