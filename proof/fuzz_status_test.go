package proof

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// FuzzDecodeStatusList: any encodedList decodes within its size bound or
// is refused, and what decodes survives a round trip.
func FuzzDecodeStatusList(f *testing.F) {
	const max = 1 << 16
	good, err := EncodeStatusList(bytes.Repeat([]byte{0x5a}, 2048))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("u")
	f.Add("uH4sIAAAAAAAA")
	f.Add("z" + good[1:])
	f.Fuzz(func(t *testing.T, encoded string) {
		var bits []byte
		var err error
		noPanic(t, "DecodeStatusList", func() { bits, err = DecodeStatusList(encoded, max) })
		if err != nil {
			return
		}
		if len(bits) > max {
			t.Fatalf("decoded %d bytes beyond the bound %d", len(bits), max)
		}
		again, err := EncodeStatusList(bits)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeStatusList(again, max)
		if err != nil || !bytes.Equal(back, bits) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzVerifyStatusWire and FuzzVerifyRegistryExportWire: arbitrary status
// answers and list exports, as a node's client receives them, are refused
// with a *VerifyError naming the step, never a panic.
func FuzzVerifyStatusWire(f *testing.F) {
	vec := vectorNamed(f, "four-validators/validator-link-partial-commit")
	st, err := proto.Marshal(&Status{Version: StatusVersion, Receipt: vec.receipt(f), Height: 3})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(st)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Status
		if proto.Unmarshal(data, &s) != nil {
			return
		}
		var err error
		noPanic(t, "VerifyStatus", func() { _, err = VerifyStatus(&s, vec.trust, time.Hour, time.Now()) })
		var ve *VerifyError
		if err == nil || !errorsAsVerifyError(err, &ve) {
			t.Fatalf("VerifyStatus of arbitrary bytes: %v", err)
		}
	})
}

func FuzzVerifyRegistryExportWire(f *testing.F) {
	vec := vectorNamed(f, "four-validators/validator-link-partial-commit")
	list, err := EncodeStatusList(make([]byte, 16384))
	if err != nil {
		f.Fatal(err)
	}
	ex, err := proto.Marshal(&RegistryExport{Version: 1, ChainId: vec.trust.ChainID, Height: 3, EncodedList: list})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ex)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var e RegistryExport
		if proto.Unmarshal(data, &e) != nil {
			return
		}
		var err error
		noPanic(t, "VerifyRegistryExport", func() { _, _, err = VerifyRegistryExport(&e, vec.trust, time.Hour, time.Now()) })
		var ve *VerifyError
		if err == nil || !errorsAsVerifyError(err, &ve) {
			t.Fatalf("VerifyRegistryExport of arbitrary bytes: %v", err)
		}
	})
}
