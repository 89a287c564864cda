package nsprmod

import (
	"fmt"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// Event kind and fields: those of sdk/tlsrecord, which decodes the records,
// and the layer.
const (
	KindTLSData = tlsrecord.KindTLSData
	// FieldLib is the library, "nspr".
	FieldLib = tlsrecord.FieldLib
	// FieldFn is the NSPR function: PR_Write, PR_Send, PR_Read, PR_Recv or
	// PR_Writev.
	FieldFn = tlsrecord.FieldFn
	// FieldLayer is what the descriptor of the call was: one of the Layer
	// values.
	FieldLayer = "layer"
	// FieldTruncated and FieldGap say bytes are missing (tlsrecord).
	FieldTruncated = tlsrecord.FieldTruncated
	FieldGap       = tlsrecord.FieldGap
	// LibNSPR is the value of FieldLib.
	LibNSPR = "nspr"
)

// Values of FieldLayer.
const (
	// LayerSSL is a descriptor whose stack holds NSS's SSL layer: the
	// bytes are TLS plaintext. The only layer kept when ssl_only is set.
	LayerSSL = "ssl"
	// LayerTCP, LayerUDP, LayerFile and LayerPipe are plain NSPR
	// descriptors of that type (PR_DESC_SOCKET_TCP...): a TCP socket under
	// an SSL layer carries ciphertext.
	LayerTCP  = "tcp"
	LayerUDP  = "udp"
	LayerFile = "file"
	LayerPipe = "pipe"
	// LayerLayered is a stack of layers without NSS's SSL layer.
	LayerLayered = "layered"
	// LayerUnknown is a descriptor the probe could not read.
	LayerUnknown = "unknown"
)

// layerNames are the names of enum nspr_layer (kern/nspr_kern.c).
var layerNames = []string{0: LayerUnknown, 1: LayerFile, 2: LayerTCP, 3: LayerUDP, 4: LayerLayered, 5: LayerPipe, 6: LayerSSL}

// fnNames are the names of enum nspr_fn (kern/nspr_kern.c).
var fnNames = []string{1: "PR_Write", 2: "PR_Send", 3: "PR_Read", 4: "PR_Recv", 5: "PR_Writev"}

// ErrBadRecord is wrapped by Decode for a record whose fields are
// inconsistent (unknown kind, function, direction or layer, length out of
// range).
var ErrBadRecord = tlsrecord.ErrBadRecord

// Decode decodes a struct tls_data_event into a tls_data event
// (tlsrecord.Decoder) and adds its layer. It never panics: a short or
// inconsistent record is an error wrapping ebpfbase.ErrShortRecord or
// ErrBadRecord. It allocates nothing once ev's payload and fields have
// grown (and the connection is known to the gap tracker).
func (m *Module) Decode(_ string, raw []byte, ev *sdk.Event) error {
	info, err := m.dec.Decode(raw, ev)
	if err != nil {
		return err
	}
	if info >= uint32(len(layerNames)) {
		return fmt.Errorf("decoding nspr record: unknown layer %d: %w", info, ErrBadRecord)
	}
	ev.AddField(FieldLayer, layerNames[info])
	return nil
}
