package app

import (
	"crypto/ed25519"
	"flag"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/credence-ledger/credence/proof"
	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the random-operation tests (0: each test's own fixed seed); a failing test prints the seed that replays it")

// testSeed is the seed a random test runs with: its fixed seed, or -seed.
// When the test fails, it prints the command that replays it.
func testSeed(t *testing.T, fixed uint64) uint64 {
	seed := fixed
	if *seedFlag != 0 {
		seed = *seedFlag
	}
	t.Cleanup(func() {
		if t.Failed() {
			levels := strings.Split(t.Name(), "/")
			for i, l := range levels {
				levels[i] = "^" + regexp.QuoteMeta(l) + "$"
			}
			t.Logf("replay with: go test -tags badgerdb ./app/ -run '%s' -seed %d", strings.Join(levels, "/"), seed)
		}
	})
	return seed
}

// gen is the random-operation generator: each transaction is one operation
// drawn by weight and built against the generator's picture of the chain
// (issuers, their keys and batches, the sequences used) and the committed
// state of a reference chain (members, proposals), so that most
// transactions mean something and many are refused for a reason. The same
// seed and the same operations give the same blocks.
type gen struct {
	t   testing.TB
	r   *rand.Rand
	ref *chain
	ops []op
	// maxHashes is the most hashes an anchored batch draws, above the
	// chain's limit so that some batches are too large.
	maxHashes int

	members []member // genesis members and every candidate ever proposed
	issuers []*genIssuer
	lists   []genList
	batches []*batch
	seq     map[string]uint64
	history [][]byte
	fresh   int // ids and keys made so far
}

// An op builds one transaction; ok false when it has nothing to work on
// (another op is drawn).
type op struct {
	name   string
	weight int
	tx     func(g *gen) (raw []byte, ok bool)
}

type genIssuer struct {
	id      string
	sponsor string
	keys    []ed25519.PrivateKey // every key it was given, the latest last
}

type genList struct {
	issuer, id string
	size       uint64
}

func newGen(t testing.TB, seed uint64, ref *chain, ops []op, maxHashes int, issuers []*genIssuer) *gen {
	return &gen{
		t: t, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), ref: ref, ops: ops, maxHashes: maxHashes,
		members: slices.Clone(ref.m), issuers: issuers, seq: map[string]uint64{},
	}
}

// block is the next block's transactions, 0 to maxTxs of them.
func (g *gen) block(maxTxs int) [][]byte {
	txs := make([][]byte, g.r.IntN(maxTxs+1))
	for i := range txs {
		txs[i] = g.tx()
	}
	return txs
}

func (g *gen) tx() []byte {
	total := 0
	for _, o := range g.ops {
		total += o.weight
	}
	for {
		w := g.r.IntN(total)
		for _, o := range g.ops {
			if w -= o.weight; w < 0 {
				if raw, ok := o.tx(g); ok {
					return raw
				}
				break
			}
		}
	}
}

// keep records a transaction for later replays.
func (g *gen) keep(raw []byte) ([]byte, bool) {
	g.history = append(g.history, raw)
	return raw, true
}

// next is account's next sequence, now and then one above it (a gap the
// chain allows) or one already used (a replay).
func (g *gen) next(account string) uint64 {
	if g.r.IntN(20) == 0 && g.seq[account] > 0 {
		return 1 + uint64(g.r.IntN(int(g.seq[account])))
	}
	g.seq[account] += 1 + uint64(g.r.IntN(2))
	return g.seq[account]
}

func (g *gen) freshKey() ed25519.PrivateKey {
	g.fresh++
	return testKey(fmt.Sprintf("gen-%d", g.fresh))
}

func (g *gen) issuer() *genIssuer { return g.issuers[g.r.IntN(len(g.issuers))] }

// issuerKey is one of is's keys: mostly its latest, now and then an older
// one (perhaps retired, compromised or not valid yet).
func (g *gen) issuerKey(is *genIssuer) ed25519.PrivateKey {
	if g.r.IntN(4) == 0 {
		return is.keys[g.r.IntN(len(is.keys))]
	}
	return is.keys[len(is.keys)-1]
}

func (g *gen) pick(ms []member) member { return ms[g.r.IntN(len(ms))] }

// current lists the members of the reference's committed state.
func (g *gen) current() []member {
	var out []member
	for _, m := range g.ref.committedMembers() {
		for _, k := range g.members {
			if k.id == m.Id {
				out = append(out, k)
			}
		}
	}
	return out
}

func (g *gen) memberNamed(id string) member {
	for _, m := range g.members {
		if m.id == id {
			return m
		}
	}
	g.t.Fatalf("no member %q", id)
	return member{}
}

// memberSigner is a current member with its admin key; now and then a
// former or never-admitted member, a stranger, or the wrong key.
func (g *gen) memberSigner() (member, ed25519.PrivateKey) {
	m := g.pick(g.current())
	switch p := g.r.IntN(100); {
	case p < 6:
		m = g.pick(g.members)
	case p < 9:
		m = member{id: "stranger", admin: strangerKey, val: strangerKey}
	}
	switch p := g.r.IntN(100); {
	case p < 4:
		return m, m.val
	case p < 7:
		return m, strangerKey
	}
	return m, m.admin
}

// bySponsor signs msg as is's sponsor, now and then as another member or
// with its validator key.
func (g *gen) bySponsor(is *genIssuer, msg bodyFn) []byte {
	m := g.memberNamed(is.sponsor)
	if g.r.IntN(8) == 0 {
		m = g.pick(g.members)
	}
	key := m.admin
	if g.r.IntN(15) == 0 {
		key = m.val
	}
	return sign(g.t, msg(m.id, g.next(memberAccount(m.id))), key)
}

func (g *gen) byIssuer(is *genIssuer, msg bodyFn) []byte {
	return sign(g.t, msg(is.id, g.next(issuerAccount(is.id))), g.issuerKey(is))
}

// byIssuerOrSponsor: messages either may sign.
func (g *gen) byIssuerOrSponsor(is *genIssuer, msg bodyFn) []byte {
	if g.r.IntN(2) == 0 {
		return g.byIssuer(is, msg)
	}
	return g.bySponsor(is, msg)
}

// The operations.

// opAnchor: an issuer's next batch, with one of its keys.
func opAnchor(g *gen) ([]byte, bool) {
	is := g.issuer()
	b := &batch{issuer: is.id, seq: g.next(issuerAccount(is.id))}
	// Distinct hashes even for a reused sequence.
	b.hashes = hashesN(fmt.Sprintf("gen/%s/%d/%d", is.id, b.seq, g.r.Uint32()), 1+g.r.IntN(g.maxHashes))
	tree, err := proof.NewTree(b.hashes)
	if err != nil {
		g.t.Fatal(err)
	}
	b.tree = tree
	g.batches = append(g.batches, b)
	return g.keep(anchor(g.t, testChainID, is.id, b.seq, b.hashes, g.issuerKey(is)))
}

// opCorruptAnchor: a batch that would otherwise be valid, broken one way;
// its sequence is not consumed.
func opCorruptAnchor(g *gen) ([]byte, bool) {
	is := g.issuer()
	key := g.issuerKey(is)
	hs := hashesN(fmt.Sprintf("gen/corrupt/%d", g.r.Uint32()), 1+g.r.IntN(g.maxHashes))
	body := anchorBody(is.id, g.seq[issuerAccount(is.id)]+1, hs)
	switch g.r.IntN(10) {
	case 0:
		body.ChainId = "credence-other-1"
	case 1:
		body.GetAnchorBatch().Root[g.r.IntN(proof.HashSize)] ^= 1 << g.r.IntN(8)
	case 2:
		body.GetAnchorBatch().Hashes = hs[:len(hs)-1-g.r.IntN(31)]
	case 3:
		body.Signer = "nobody"
	case 4:
		body.Sequence = 0
	case 5:
		return rawTx(g.t, body, pubOf(key), strangerKey), true // signed by another key
	case 6:
		return rawTx(g.t, body, pubOf(strangerKey), strangerKey), true // an unregistered key
	case 7:
		raw := rawTx(g.t, body, pubOf(key), key)
		return raw[:g.r.IntN(len(raw))], true
	case 8:
		b := make([]byte, g.r.IntN(200))
		for i := range b {
			b[i] = byte(g.r.Uint32())
		}
		return b, true
	case 9:
		body.Msg = nil
	}
	return rawTx(g.t, body, pubOf(key), key), true
}

// opReplay: an exact copy of an earlier transaction.
func opReplay(g *gen) ([]byte, bool) {
	if len(g.history) == 0 {
		return nil, false
	}
	return g.history[g.r.IntN(len(g.history))], true
}

// opRegisterIssuer: a member registers a new issuer (now and then an id
// taken, a small-order key, or a stranger signing).
func opRegisterIssuer(g *gen) ([]byte, bool) {
	m, key := g.memberSigner()
	id, fresh := g.issuer().id, g.r.IntN(6) != 0
	if fresh {
		g.fresh++
		id = fmt.Sprintf("iss-%d", g.fresh)
	}
	var keys []ed25519.PrivateKey
	var pubs [][]byte
	for range 1 + g.r.IntN(3) {
		k := g.freshKey()
		keys, pubs = append(keys, k), append(pubs, pubOf(k))
	}
	if g.r.IntN(15) == 0 {
		pubs = append(pubs, identityPoint)
	}
	raw := sign(g.t, registerIssuer(id, "gen", pubs...)(m.id, g.next(memberAccount(m.id))), key)
	if fresh && slices.ContainsFunc(g.members, func(k member) bool { return k.id == m.id }) {
		g.issuers = append(g.issuers, &genIssuer{id: id, sponsor: m.id, keys: keys})
	}
	return g.keep(raw)
}

// opRotateKey: the issuer or its sponsor rotates to a new key (now and
// then one the issuer had).
func opRotateKey(g *gen) ([]byte, bool) {
	is := g.issuer()
	k := g.freshKey()
	pub := pubOf(k)
	if g.r.IntN(12) == 0 {
		pub = pubOf(is.keys[g.r.IntN(len(is.keys))])
	}
	raw := g.byIssuerOrSponsor(is, rotateKey(is.id, pub))
	is.keys = append(is.keys, k)
	return g.keep(raw)
}

// opCompromiseKey: the sponsor marks a key compromised from a height up
// to the next one.
func opCompromiseKey(g *gen) ([]byte, bool) {
	is := g.issuer()
	key := pubOf(is.keys[g.r.IntN(len(is.keys))])
	if g.r.IntN(15) == 0 {
		key = pubOf(strangerKey)
	}
	return g.keep(g.bySponsor(is, compromiseKey(is.id, key, 1+g.r.Int64N(g.ref.height+2))))
}

// opRevoke: the issuer or its sponsor revokes one or two hashes of a
// batch (now and then of another issuer's batch, or a wrong leaf index).
func opRevoke(g *gen) ([]byte, bool) {
	if len(g.batches) == 0 {
		return nil, false
	}
	b := g.batches[g.r.IntN(len(g.batches))]
	var hs []*pb.RevokedHash
	for range 1 + g.r.IntN(2) {
		o := b
		if g.r.IntN(8) == 0 {
			o = g.batches[g.r.IntN(len(g.batches))]
		}
		h := o.revoked(g.r.IntN(int(o.tree.Size())))
		if g.r.IntN(12) == 0 {
			h.LeafIndex++
		}
		hs = append(hs, h)
	}
	for _, is := range g.issuers {
		if is.id == b.issuer {
			return g.keep(g.byIssuerOrSponsor(is, revoke(b.issuer, uint32(g.r.IntN(4)), hs...)))
		}
	}
	g.t.Fatalf("batch of unknown issuer %q", b.issuer)
	return nil, false
}

// opPropose: a member proposes an action; now and then one that cannot
// apply or is malformed.
func opPropose(g *gen) ([]byte, bool) {
	m, key := g.memberSigner()
	var p *pb.Propose
	switch g.r.IntN(14) {
	case 0, 1, 2:
		c := newMember(fmt.Sprintf("cand-%d", len(g.members)), 1+int64(g.r.IntN(12)))
		g.members = append(g.members, c)
		a := c.addMember()
		if g.r.IntN(8) == 0 {
			a.ValidatorKey = pubOf(g.pick(g.members).val) // perhaps a member's
		}
		p = addMember(a)
	case 3:
		p = addMember(g.pick(g.members).addMember())
	case 4:
		p = removeMember(g.pick(g.members).id)
	case 5, 6:
		p = changePower(g.pick(g.members).id, 1+int64(g.r.IntN(20)))
	case 7, 8:
		st := statusActive
		if g.r.IntN(2) == 0 {
			st = statusSuspended
		}
		id := "nobody"
		if g.r.IntN(5) != 0 {
			id = g.issuer().id
		}
		p = setIssuerStatus(id, st)
	case 9, 10:
		p = setMaxHashes(8 + uint64(g.r.IntN(25)))
	case 11:
		p = setTTL(2 + int64(g.r.IntN(5)))
	case 12:
		p = changePower(g.pick(g.members).id, 0) // malformed
	default:
		p = &pb.Propose{Description: "no action"} // malformed
	}
	return g.keep(sign(g.t, proposeBody(m.id, g.next(memberAccount(m.id)), p), key))
}

// opVote: mostly a member that has not voted on an open proposal.
func opVote(g *gen) ([]byte, bool) {
	m, key := g.memberSigner()
	next := g.ref.nextProposalID()
	lo := max(1, int(next)-6)
	id := uint64(lo + g.r.IntN(int(next)-lo+1))
	if open := g.open(); len(open) > 0 && g.r.IntN(5) != 0 {
		id = open[g.r.IntN(len(open))]
		p := g.ref.proposal(id)
		var fresh []member
		for _, c := range g.current() {
			if !slices.Contains(p.Yes, c.id) && !slices.Contains(p.No, c.id) {
				fresh = append(fresh, c)
			}
		}
		if len(fresh) > 0 && g.r.IntN(5) != 0 {
			m = g.pick(fresh)
			key = m.admin
		}
	}
	return g.keep(sign(g.t, voteBody(m.id, g.next(memberAccount(m.id)), id, g.r.IntN(3) != 0), key))
}

// open lists the proposals open in the reference's committed state.
func (g *gen) open() []uint64 {
	var out []uint64
	for id := uint64(1); id < g.ref.nextProposalID(); id++ {
		if g.ref.proposal(id).Status == pb.ProposalStatus_PROPOSAL_STATUS_OPEN {
			out = append(out, id)
		}
	}
	return out
}

// opCreateStatusList: an issuer creates a status list (now and then of a
// size out of bounds, or an id it has).
func opCreateStatusList(g *gen) ([]byte, bool) {
	is := g.issuer()
	l := genList{issuer: is.id, id: fmt.Sprintf("sl-%d", g.r.IntN(4)), size: MinStatusListSize << g.r.IntN(3)}
	purpose := []pb.RegistryPurpose{slRevocation, slSuspension}[g.r.IntN(2)]
	if g.r.IntN(10) == 0 {
		l.size += 4 // not a multiple of 8
	}
	g.lists = append(g.lists, l)
	return g.keep(g.byIssuer(is, createStatusList(l.id, purpose, l.size)))
}

// opUpdateStatusList: the issuer or its sponsor sets or clears a few bits
// (now and then an index out of range).
func opUpdateStatusList(g *gen) ([]byte, bool) {
	if len(g.lists) == 0 {
		return nil, false
	}
	l := g.lists[g.r.IntN(len(g.lists))]
	var set, clear []uint64
	for i := range 1 + g.r.IntN(4) {
		idx := g.r.Uint64N(l.size)
		if g.r.IntN(20) == 0 {
			idx = l.size
		}
		// Distinct indices: the same index twice is malformed.
		idx = idx&^3 | uint64(i)
		if g.r.IntN(3) == 0 {
			clear = append(clear, idx)
		} else {
			set = append(set, idx)
		}
	}
	for _, is := range g.issuers {
		if is.id == l.issuer {
			return g.keep(g.byIssuerOrSponsor(is, updateStatusList(l.issuer, l.id, set, clear)))
		}
	}
	g.t.Fatalf("status list of unknown issuer %q", l.issuer)
	return nil, false
}

// opProposeUpgrade: a member proposes an upgrade to version 3 a few blocks
// ahead (now and then at a height already past), or the cancellation of
// the pending plan (now and then of one that is not pending).
func opProposeUpgrade(g *gen) ([]byte, bool) {
	m, key := g.memberSigner()
	g.fresh++
	var p *pb.Propose
	switch g.r.IntN(6) {
	case 0:
		name := fmt.Sprintf("v3-%d", g.fresh)
		if pl, _, err := g.ref.app.UpgradePlan(); err == nil && pl != nil && g.r.IntN(3) != 0 {
			name = pl.Name
		}
		p = cancelUpgrade(name)
	default:
		h := g.ref.height + int64(g.r.IntN(12)) - 1
		p = upgradeTo(fmt.Sprintf("v3-%d", g.fresh), h, 3)
	}
	return g.keep(sign(g.t, proposeBody(m.id, g.next(memberAccount(m.id)), p), key))
}
