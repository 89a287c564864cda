package config

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// OutputOTLP is the kind of an output block that exports OTLP logs.
const OutputOTLP = "otlp"

// The values of an otlp output's protocol attribute.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Limits of queue_mib.
const (
	DefaultQueueMiB = 64
	MaxQueueMiB     = 4096
)

// OTLP is the settings of an otlp output block.
type OTLP struct {
	// Endpoint is host:port of the Collector's OTLP receiver.
	Endpoint string
	// Protocol is ProtocolGRPC (the default) or ProtocolHTTP.
	Protocol string
	// Insecure sends in the clear; otherwise TLS is used, with CAFile as
	// the roots when set (else the system's) and CertFile and KeyFile as
	// the client certificate when set.
	Insecure                  bool
	CAFile, CertFile, KeyFile string
	// Headers are sent with every export (gRPC metadata or HTTP headers).
	Headers map[string]string
	// QueueMiB bounds what waits to be exported, in MiB.
	QueueMiB int
}

var otlpSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "endpoint", Required: true}, {Name: "protocol"}, {Name: "insecure"},
		{Name: "ca_file"}, {Name: "cert_file"}, {Name: "key_file"},
		{Name: "headers"}, {Name: "queue_mib"},
	},
}

// parseOTLP reads an otlp output block. Every mistake is a diagnostic on
// the attribute at fault: an endpoint that is not host:port, a protocol
// not known, a TLS file that does not exist.
func parseOTLP(block *hcl.Block, ctx *hcl.EvalContext) (*Output, hcl.Diagnostics) {
	out := &Output{Kind: OutputOTLP, DeclRange: block.DefRange}
	o := &OTLP{Protocol: ProtocolGRPC, QueueMiB: DefaultQueueMiB}
	content, diags := block.Body.Content(otlpSchema)
	ok := !diags.HasErrors()
	bad := func(attr *hcl.Attribute, detail string) {
		diags = append(diags, attrDiag(attr, ctx, "Invalid attribute value", detail))
		ok = false
	}
	str := func(name string) (string, *hcl.Attribute) {
		attr, present := content.Attributes[name]
		if !present {
			return "", nil
		}
		s, valid, ds := evalString(attr, ctx)
		diags = append(diags, ds...)
		if ds.HasErrors() {
			ok = false
		}
		if !valid {
			return "", nil
		}
		return s, attr
	}

	if s, attr := str("endpoint"); attr != nil {
		if err := checkEndpoint(s); err != nil {
			bad(attr, fmt.Sprintf(`"endpoint" must be host:port of the Collector's OTLP receiver (for example "127.0.0.1:4317"): %v.`, err))
		} else {
			o.Endpoint = s
		}
	}
	if s, attr := str("protocol"); attr != nil {
		if s != ProtocolGRPC && s != ProtocolHTTP {
			bad(attr, fmt.Sprintf(`"protocol" must be %q (OTLP over gRPC, port 4317) or %q (OTLP over HTTP, port 4318), not %q.`, ProtocolGRPC, ProtocolHTTP, s))
		} else {
			o.Protocol = s
		}
	}
	if attr, present := content.Attributes["insecure"]; present {
		v, ds := evalAttr(attr, ctx, cty.Bool)
		diags = append(diags, ds...)
		if ds.HasErrors() {
			ok = false
		} else if !v.IsNull() {
			o.Insecure = v.True()
		}
	}
	var tlsAttr *hcl.Attribute
	for _, f := range []struct {
		name string
		dst  *string
	}{{"ca_file", &o.CAFile}, {"cert_file", &o.CertFile}, {"key_file", &o.KeyFile}} {
		s, attr := str(f.name)
		if attr == nil {
			continue
		}
		tlsAttr = attr
		fi, err := os.Stat(s)
		switch {
		case s == "":
			bad(attr, fmt.Sprintf("%q must not be empty; remove it instead.", f.name))
		case err != nil:
			bad(attr, fmt.Sprintf("%q names a file that cannot be read: %v.", f.name, err))
		case !fi.Mode().IsRegular():
			bad(attr, fmt.Sprintf("%q must name a regular file; %s is not one.", f.name, s))
		default:
			*f.dst = s
		}
	}
	if o.Insecure && tlsAttr != nil {
		bad(tlsAttr, `An output with "insecure = true" sends in the clear and uses no TLS file; remove one or the other.`)
	}
	if (o.CertFile == "") != (o.KeyFile == "") && ok {
		attr := content.Attributes["cert_file"]
		if attr == nil {
			attr = content.Attributes["key_file"]
		}
		bad(attr, `A client certificate needs both "cert_file" and "key_file".`)
	}
	if attr, present := content.Attributes["headers"]; present {
		v, ds := evalAttr(attr, ctx, cty.Map(cty.String))
		diags = append(diags, ds...)
		switch {
		case ds.HasErrors():
			ok = false
		case !v.IsNull():
			o.Headers = map[string]string{}
			for k, hv := range v.AsValueMap() {
				if hv.IsNull() {
					bad(attr, fmt.Sprintf("The header %q must have a value.", k))
					continue
				}
				o.Headers[k] = hv.AsString()
			}
		}
	}
	if attr, present := content.Attributes["queue_mib"]; present {
		n, valid, ds := evalInt(attr, ctx, 1, MaxQueueMiB)
		diags = append(diags, ds...)
		if valid {
			o.QueueMiB = int(n)
		} else if ds.HasErrors() {
			ok = false
		}
	}
	if !ok || diags.HasErrors() {
		return nil, diags
	}
	out.OTLP = o
	return out, diags
}

// checkEndpoint checks that s is host:port with a port from 1 to 65535.
func checkEndpoint(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}
