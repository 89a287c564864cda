package config

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Metrics is the metrics block: where the host serves Prometheus metrics
// (/metrics) and its health (/healthz).
type Metrics struct {
	// Listen is host:port; the host is an IP address or "localhost".
	Listen string
	// AllowRemote must be set to listen on anything but a loopback
	// address: the metrics name the processes and modules captured.
	AllowRemote bool
	// DeclRange covers `metrics`.
	DeclRange hcl.Range
}

var metricsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "listen", Required: true}, {Name: "allow_remote"}},
}

func parseMetrics(block *hcl.Block, ctx *hcl.EvalContext) (*Metrics, hcl.Diagnostics) {
	m := &Metrics{DeclRange: block.DefRange}
	content, diags := block.Body.Content(metricsSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	if attr, ok := content.Attributes["allow_remote"]; ok {
		v, ds := evalAttr(attr, ctx, cty.Bool)
		diags = append(diags, ds...)
		if !v.IsNull() {
			m.AllowRemote = v.True()
		}
	}
	attr := content.Attributes["listen"]
	s, ok, ds := evalString(attr, ctx)
	diags = append(diags, ds...)
	if !ok {
		return nil, diags
	}
	host, port, err := net.SplitHostPort(s)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		return nil, append(diags, attrDiag(attr, ctx, "Invalid attribute value",
			fmt.Sprintf(`"listen" must be host:port, for example "127.0.0.1:9464": %v.`, err)))
	}
	loopback := host == "localhost"
	if addr, err := netip.ParseAddr(host); err == nil {
		loopback = addr.IsLoopback()
	} else if host != "" && host != "localhost" {
		return nil, append(diags, attrDiag(attr, ctx, "Invalid attribute value",
			fmt.Sprintf(`The host of "listen" must be an IP address or "localhost", not %q.`, host)))
	}
	if !loopback && !m.AllowRemote {
		return nil, append(diags, attrDiag(attr, ctx, "Invalid attribute value",
			fmt.Sprintf(`%q is reachable from other hosts, and the metrics name the modules and outputs of this one; set "allow_remote = true" to listen there anyway, or use a 127.0.0.1 address.`, s)))
	}
	m.Listen = s
	return m, diags
}
