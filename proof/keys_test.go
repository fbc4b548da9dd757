package proof

import (
	"bytes"
	"testing"
)

// TestStateKeyLayout pins the state keys: the state machine writes under
// these same functions, so a change here is a change of the chain's format
// (and of every app hash).
func TestStateKeyLayout(t *testing.T) {
	h := bytes.Repeat([]byte{0xab}, 32)
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"batch", BatchKey("uni-1.x_y", 1<<40+2), "b/uni-1.x_y/\x00\x00\x01\x00\x00\x00\x00\x02"},
		{"batch seq 0", BatchKey("a", 0), "b/a/\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"batch max seq", BatchKey("a", ^uint64(0)), "b/a/\xff\xff\xff\xff\xff\xff\xff\xff"},
		{"issuer", IssuerKey("alpha"), "i/alpha"},
		{"revocation", RevocationKey("alpha", h), "r/alpha/" + string(h)},
		{"status list", RegistryKey("alpha", "rl-1"), "sl/alpha/rl-1"},
		{"status chunk", ChunkKey("alpha", "rl-1", 258), "sc/alpha/rl-1/\x00\x00\x01\x02"},
		{"signed status list", SignedListKey("alpha", "rl-1"), "sd/alpha/rl-1"},
		{"member", MemberKey("uni"), "m/uni"},
		{"issuer sequence", IssuerSequenceKey("alpha"), "s/i/alpha"},
		{"member sequence", MemberSequenceKey("uni"), "s/m/uni"},
		{"proposal", ProposalKey(258), "g/p/\x00\x00\x00\x00\x00\x00\x01\x02"},
		{"open proposal", OpenProposalKey(1<<32+5, 7), "g/o/\x00\x00\x00\x01\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x07"},
		{"next proposal", []byte(KeyNextProposal), "g/next"},
		{"params", []byte(KeyParams), "p"},
		{"changed at", []byte(KeyChangedAt), "h/changed"},
		{"proof block", []byte(KeyProofBlock), "h/proof"},
		{"app version", []byte(KeyAppVersion), "u/version"},
		{"upgrade plan", []byte(KeyUpgradePlan), "u/plan"},
		{"upgrade done", UpgradeDoneKey("v3"), "u/done/v3"},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("%s: key %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		want   []byte
	}{
		{PrefixBatch, []byte("b0")},
		{PrefixIssuer, []byte("i0")},
		{PrefixMember, []byte("m0")},
		{PrefixOpenProposal, []byte("g/o0")},
		{"a\xff", []byte("b")},
		{"a\xff\xff", []byte("b")},
		{"\xff\xff", nil},
		{"", nil},
	} {
		if got := PrefixEnd(tc.prefix); !bytes.Equal(got, tc.want) {
			t.Errorf("PrefixEnd(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

// TestPrefixRanges: every key built under a prefix falls in its scan range
// [prefix, PrefixEnd(prefix)), and in no other prefix's range, so a scan of
// one kind of record never meets another kind.
func TestPrefixRanges(t *testing.T) {
	high := bytes.Repeat([]byte{0xff}, 32)
	built := map[string][][]byte{
		PrefixBatch:        {BatchKey("a", 0), BatchKey("zzz", ^uint64(0))},
		PrefixIssuer:       {IssuerKey("a"), IssuerKey("z.z_z-9")},
		PrefixRevocation:   {RevocationKey("a", make([]byte, 32)), RevocationKey("z", high)},
		PrefixStatusList:   {RegistryKey("a", "b"), RegistryKey("z", "z")},
		PrefixStatusChunk:  {ChunkKey("a", "b", 0), ChunkKey("z", "z", ^uint32(0))},
		PrefixMember:       {MemberKey("a"), MemberKey("z")},
		PrefixSequence:     {IssuerSequenceKey("a"), MemberSequenceKey("z")},
		PrefixProposal:     {ProposalKey(0), ProposalKey(^uint64(0))},
		PrefixOpenProposal: {OpenProposalKey(0, 0), OpenProposalKey(1<<62, ^uint64(0))},
		KeyNextProposal:    {[]byte(KeyNextProposal)},
		KeyParams:          {[]byte(KeyParams)},
		KeyChangedAt:       {[]byte(KeyChangedAt)},
		KeyProofBlock:      {[]byte(KeyProofBlock)},
		KeyAppVersion:      {[]byte(KeyAppVersion)},
		KeyUpgradePlan:     {[]byte(KeyUpgradePlan)},
		PrefixUpgradeDone:  {UpgradeDoneKey("a"), UpgradeDoneKey("z")},
	}
	for prefix, keys := range built {
		for _, k := range keys {
			for other := range built {
				in := bytes.Compare(k, []byte(other)) >= 0 && bytes.Compare(k, PrefixEnd(other)) < 0
				if in != (other == prefix) {
					t.Errorf("key %q in the range of %q: %v, want %v", k, other, in, other == prefix)
				}
			}
		}
	}
}
