package proof

import (
	"bytes"
	stded25519 "crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// Commit signatures are checked with curve25519-voi (verifySignature), but
// the rule is Go's crypto/ed25519 (docs/receipt.md, "Vote sign-bytes"). These
// tests hold the two to the same verdict on every input, crypto/ed25519
// being the reference: valid signatures and their mutations, and the
// encodings where ed25519 implementations part ways (non-canonical S,
// non-canonical and small-order A and R, the identity).

var (
	// groupOrder is L, the order of the base point.
	groupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	// fieldPrime is p = 2^255 - 19.
	fieldPrime = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
)

// sigChecker compares verifySignature with crypto/ed25519 and counts the
// kinds of input that were accepted, so that a test can require that its
// awkward cases were really reached.
type sigChecker struct {
	t             *testing.T
	checked       int
	accepted      int
	acceptedKinds map[string]int
	logged        int // disagreements shown in t's log
}

func newSigChecker() *sigChecker { return &sigChecker{acceptedKinds: map[string]int{}} }

// use reports to t from now on.
func (c *sigChecker) use(t *testing.T) {
	c.t, c.logged = t, 0
}

// check returns crypto/ed25519's verdict, and fails the test when
// verifySignature's differs.
func (c *sigChecker) check(kind string, pub, msg, sig []byte) bool {
	c.t.Helper()
	want := stded25519.Verify(stded25519.PublicKey(pub), msg, sig)
	got := verifySignature(pub, msg, sig)
	c.checked++
	if want {
		c.accepted++
		c.acceptedKinds[kind]++
	}
	if got != want {
		c.t.Fail()
		if c.logged++; c.logged <= 10 {
			c.t.Errorf("%s: crypto/ed25519 says %v, verifySignature %v\n A %x\n R %x\n S %x\n M %x", kind, want, got, pub, sig[:32], sig[32:], msg)
		}
	}
	return want
}

func (c *sigChecker) requireAccepted(kinds ...string) {
	c.t.Helper()
	for _, k := range kinds {
		if c.acceptedKinds[k] == 0 {
			c.t.Errorf("no %q signature was accepted: the case was not exercised", k)
		}
	}
	c.t.Logf("%d signatures checked, %d accepted by both; accepted by kind: %v", c.checked, c.accepted, c.acceptedKinds)
}

func leBytes(x *big.Int) []byte {
	be := x.FillBytes(make([]byte, 32))
	le := make([]byte, 32)
	for i := range be {
		le[i] = be[31-i]
	}
	return le
}

func leInt(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i := range b {
		be[i] = b[len(b)-1-i]
	}
	return new(big.Int).SetBytes(be)
}

func toScalar(t *testing.T, x *big.Int) *scalar.Scalar {
	s, err := scalar.NewFromBytesModOrder(leBytes(new(big.Int).Mod(x, groupOrder)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomScalar(rng *rand.Rand) *big.Int {
	return new(big.Int).Mod(leInt(randBytes(rng, 64)), groupOrder)
}

func basepointMul(t *testing.T, r *big.Int) *curve.EdwardsPoint {
	return new(curve.EdwardsPoint).MulBasepoint(curve.ED25519_BASEPOINT_TABLE, toScalar(t, r))
}

func encodePoint(p *curve.EdwardsPoint) []byte {
	var c curve.CompressedEdwardsY
	c.SetEdwardsPoint(p)
	return c[:]
}

// decodePoint decodes as crypto/ed25519 does (any y below 2^255, x = 0 with
// either sign), or returns nil.
func decodePoint(b []byte) *curve.EdwardsPoint {
	var c curve.CompressedEdwardsY
	if _, err := c.SetBytes(b); err != nil {
		return nil
	}
	var p curve.EdwardsPoint
	if _, err := p.SetCompressedY(&c); err != nil {
		return nil
	}
	return &p
}

// challenge is k = SHA-512(R || A || M) mod L.
func challenge(r, a, msg []byte) *big.Int {
	h := sha512.New()
	h.Write(r)
	h.Write(a)
	h.Write(msg)
	return new(big.Int).Mod(leInt(h.Sum(nil)), groupOrder)
}

func signature(r []byte, s *big.Int) []byte {
	return append(append([]byte{}, r...), leBytes(s)...)
}

// awkwardEncodings are 32-byte strings that decode to small-order points,
// to points through a non-canonical encoding (y ≥ p, or x = 0 with the
// sign bit set), or to nothing: y from 0 to 18 and y + p, y = p − 1, and
// the 8-torsion points, each with both sign bits.
func awkwardEncodings() [][]byte {
	var ys []*big.Int
	for y := int64(0); y <= 18; y++ {
		ys = append(ys, big.NewInt(y), new(big.Int).Add(big.NewInt(y), fieldPrime))
	}
	ys = append(ys, new(big.Int).Sub(fieldPrime, big.NewInt(1)))
	var out [][]byte
	for _, y := range ys {
		b := leBytes(y)
		out = append(out, b)
		withSign := bytes.Clone(b)
		withSign[31] |= 0x80
		out = append(out, withSign)
	}
	for _, p := range curve.EIGHT_TORSION {
		b := encodePoint(p)
		flipped := bytes.Clone(b)
		flipped[31] ^= 0x80
		out = append(out, b, flipped)
	}
	return out
}

type testKey struct {
	pub  []byte
	priv stded25519.PrivateKey
	a    *big.Int // the secret scalar
}

func newTestKey(seed []byte) testKey {
	priv := stded25519.NewKeyFromSeed(seed)
	h := sha512.Sum512(seed)
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	return testKey{pub: priv.Public().(stded25519.PublicKey), priv: priv, a: leInt(h[:32])}
}

// mutate calls f with each single-bit flip of b, and with one random
// replacement of each byte.
func mutate(rng *rand.Rand, b []byte, f func([]byte)) {
	for i := range len(b) * 8 {
		m := bytes.Clone(b)
		m[i/8] ^= 1 << (i % 8)
		f(m)
	}
	for i := range b {
		m := bytes.Clone(b)
		m[i] ^= byte(1 + rng.IntN(255))
		f(m)
	}
}

func TestSignatureRuleIsStdlib(t *testing.T) {
	rng := rand.New(rand.NewPCG(8032, 25519))
	c := newSigChecker()

	t.Run("mutations", func(t *testing.T) {
		c.use(t)
		for n := range 6 {
			k := newTestKey(randBytes(rng, 32))
			msg := randBytes(rng, []int{0, 1, 110, 150, 200, 1000}[n])
			sig := stded25519.Sign(k.priv, msg)
			if !c.check("valid", k.pub, msg, sig) {
				t.Fatal("a fresh signature is refused")
			}
			mutate(rng, sig[:32], func(r []byte) { c.check("R mutated", k.pub, msg, append(r, sig[32:]...)) })
			mutate(rng, sig[32:], func(s []byte) { c.check("S mutated", k.pub, msg, append(bytes.Clone(sig[:32]), s...)) })
			mutate(rng, k.pub, func(a []byte) { c.check("A mutated", a, msg, sig) })
			if len(msg) > 0 {
				mutate(rng, msg[:min(len(msg), 16)], func(m []byte) {
					c.check("M mutated", k.pub, append(m, msg[min(len(msg), 16):]...), sig)
				})
				c.check("M truncated", k.pub, msg[:len(msg)-1], sig)
			}
			c.check("M extended", k.pub, append(bytes.Clone(msg), 0), sig)
		}
	})

	t.Run("non-canonical S", func(t *testing.T) {
		c.use(t)
		k := newTestKey(randBytes(rng, 32))
		msg := randBytes(rng, 110)
		sig := stded25519.Sign(k.priv, msg)
		s := leInt(sig[32:])
		// S + jL is the same scalar modulo L; every such S is refused.
		for j := int64(1); ; j++ {
			sj := new(big.Int).Add(s, new(big.Int).Mul(big.NewInt(j), groupOrder))
			if sj.BitLen() > 256 {
				break
			}
			c.check("S + jL", k.pub, msg, signature(sig[:32], sj))
		}
		c.check("S = L", k.pub, msg, signature(sig[:32], groupOrder))
		c.check("S = L - 1", k.pub, msg, signature(sig[:32], new(big.Int).Sub(groupOrder, big.NewInt(1))))
		c.check("S = 2^256 - 1", k.pub, msg, bytes.Repeat([]byte{0xff}, 32))
	})

	encs := awkwardEncodings()

	t.Run("small-order and non-canonical A", func(t *testing.T) {
		c.use(t)
		for _, a := range encs {
			p := decodePoint(a)
			if p == nil || !p.IsSmallOrder() {
				continue
			}
			kind := "small-order A"
			if !bytes.Equal(encodePoint(p), a) {
				kind = "non-canonical small-order A"
			}
			// With A of small order, [S]B − [k]A = R holds for S = r and R
			// = [r]B + T when T = −[k]A, one of the 8 torsion points:
			// try them until crypto/ed25519 accepts one.
			accepted := false
			for try := 0; try < 64 && !accepted; try++ {
				msg := randBytes(rng, 32)
				r := randomScalar(rng)
				if try%4 == 0 {
					r.SetInt64(0) // R of small order too
				}
				for _, tp := range curve.EIGHT_TORSION {
					rb := encodePoint(new(curve.EdwardsPoint).Add(basepointMul(t, r), tp))
					sig := signature(rb, r)
					if c.check(kind, a, msg, sig) {
						accepted = true
						mutate(rng, sig, func(m []byte) { c.check("mutated "+kind, a, msg, m) })
						break
					}
				}
			}
			if !accepted {
				t.Errorf("A %x: no signature accepted by crypto/ed25519 was found", a)
			}
		}
		c.requireAccepted("small-order A", "non-canonical small-order A")
	})

	t.Run("awkward A and R", func(t *testing.T) {
		c.use(t)
		msg := randBytes(rng, 110)
		for _, a := range encs {
			for _, r := range encs {
				c.check("awkward A and R, S = 0", a, msg, signature(r, big.NewInt(0)))
				c.check("awkward A and R, S = 1", a, msg, signature(r, big.NewInt(1)))
			}
		}
		c.requireAccepted("awkward A and R, S = 0")
	})

	t.Run("small-order R", func(t *testing.T) {
		c.use(t)
		for range 4 {
			k := newTestKey(randBytes(rng, 32))
			msg := randBytes(rng, 110)
			for _, r := range encs {
				// [S]B − [k]A = −[k]A + [k a]B is the identity for S = k a:
				// accepted when R is the identity's canonical encoding.
				ka := new(big.Int).Mul(challenge(r, k.pub, msg), k.a)
				c.check("R awkward, S = ka", k.pub, msg, signature(r, ka.Mod(ka, groupOrder)))
			}
			// A mixed-order R: accepted by the cofactored equation (and so
			// by batch verification), refused by the cofactorless one.
			for j, tp := range curve.EIGHT_TORSION {
				r := randomScalar(rng)
				rb := encodePoint(new(curve.EdwardsPoint).Add(basepointMul(t, r), tp))
				s := new(big.Int).Add(r, new(big.Int).Mul(challenge(rb, k.pub, msg), k.a))
				kind := "mixed-order R"
				if j == 0 { // the identity
					kind = "honest R"
				}
				c.check(kind, k.pub, msg, signature(rb, s.Mod(s, groupOrder)))
			}
		}
		c.requireAccepted("R awkward, S = ka", "honest R")
		if n := c.acceptedKinds["mixed-order R"]; n != 0 {
			t.Errorf("a mixed-order R was accepted %d times: the rule is not cofactorless", n)
		}
	})

	t.Run("RFC 8032 and speccheck vectors", func(t *testing.T) {
		c.use(t)
		// RFC 8032 section 7.1, tests 1 to 3: seed, public key, message,
		// signature.
		for i, v := range [][4]string{
			{"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
				"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
			{"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
				"92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
			{"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7", "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
				"6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
		} {
			seed, pub, msg, sig := mustHex(t, v[0]), mustHex(t, v[1]), mustHex(t, v[2]), mustHex(t, v[3])
			priv := stded25519.NewKeyFromSeed(seed)
			if !bytes.Equal(priv.Public().(stded25519.PublicKey), pub) || !bytes.Equal(stded25519.Sign(priv, msg), sig) {
				t.Fatalf("RFC 8032 test %d: key or signature differs", i+1)
			}
			if !c.check("RFC 8032", pub, msg, sig) {
				t.Errorf("RFC 8032 test %d is refused", i+1)
			}
		}
		// The cases of "Taming the many EdDSAs" (Chalkias, Garillot,
		// Nikolaenko, 2020; github.com/novifinancial/ed25519-speccheck,
		// scripts/cases.json): message, A, signature, and whether Go's
		// crypto/ed25519 accepts it.
		for i, v := range []struct {
			msg, pub, sig string
			accept        bool
		}{
			{"8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000", true},
			{"9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04", true},
			{"aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab", "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e", true},
			{"9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79", "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d", "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009", true},
			{"e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c", "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d", "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed5125ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09", false},
			{"e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c", "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d", "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405", false},
			{"85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40", "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623", "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514", false},
			{"85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40", "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623", "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa19427e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22", false},
			{"9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41", "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f", false},
			{"9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41", "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908", false},
			{"e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04", false},
			{"39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04", true},
		} {
			if got := c.check(fmt.Sprintf("speccheck %d", i), mustHex(t, v.pub), mustHex(t, v.msg), mustHex(t, v.sig)); got != v.accept {
				t.Errorf("speccheck case %d: crypto/ed25519 says %v, want %v", i, got, v.accept)
			}
		}
	})
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
