package sdk

// This file is the one place where SDK types and the generated protobuf
// types of shared/proto meet. Nothing else in the SDK or the host builds
// or reads a pluginv1 message field by field.

import (
	"fmt"
	"net/netip"
	"time"

	pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
)

func infoToProto(i Info) *pb.DescribeResponse {
	return &pb.DescribeResponse{
		Name:         i.Name,
		Version:      i.Version,
		Description:  i.Description,
		ApiVersions:  i.apiVersions(),
		ConfigSchema: schemaToProto(i.Schema),
	}
}

func (i Info) apiVersions() []uint32 {
	if len(i.APIVersions) == 0 {
		return APIVersions
	}
	return i.APIVersions
}

func infoFromProto(r *pb.DescribeResponse) (Info, error) {
	s, err := schemaFromProto(r.GetConfigSchema())
	if err != nil {
		return Info{}, err
	}
	return Info{
		Name:        r.GetName(),
		Version:     r.GetVersion(),
		Description: r.GetDescription(),
		APIVersions: r.GetApiVersions(),
		Schema:      s,
	}, nil
}

func schemaToProto(s Schema) *pb.Schema {
	out := &pb.Schema{}
	for _, a := range s.Attributes {
		pa := &pb.Attribute{
			Name:        a.Name,
			Type:        pb.Type(a.Type),
			Required:    a.Required,
			Description: a.Description,
			OneOf:       a.OneOf,
		}
		if a.Default != nil {
			pa.Default = valueToProto(a.Default)
		}
		out.Attributes = append(out.Attributes, pa)
	}
	return out
}

func schemaFromProto(p *pb.Schema) (Schema, error) {
	var s Schema
	for _, pa := range p.GetAttributes() {
		a := Attribute{
			Name:        pa.GetName(),
			Type:        Type(pa.GetType()),
			Required:    pa.GetRequired(),
			Description: pa.GetDescription(),
			OneOf:       pa.GetOneOf(),
		}
		if pa.Default != nil {
			a.Default = valueFromProto(pa.Default)
		}
		s.Attributes = append(s.Attributes, a)
	}
	if err := s.Validate(); err != nil {
		return Schema{}, err
	}
	return s, nil
}

func valueToProto(v any) *pb.Value {
	switch v := v.(type) {
	case string:
		return &pb.Value{Kind: &pb.Value_StringValue{StringValue: v}}
	case int64:
		return &pb.Value{Kind: &pb.Value_NumberValue{NumberValue: v}}
	case bool:
		return &pb.Value{Kind: &pb.Value_BoolValue{BoolValue: v}}
	case []string:
		return &pb.Value{Kind: &pb.Value_StringListValue{StringListValue: &pb.StringList{Values: v}}}
	}
	return &pb.Value{}
}

// valueFromProto returns nil for an empty value.
func valueFromProto(v *pb.Value) any {
	switch k := v.GetKind().(type) {
	case *pb.Value_StringValue:
		return k.StringValue
	case *pb.Value_NumberValue:
		return k.NumberValue
	case *pb.Value_BoolValue:
		return k.BoolValue
	case *pb.Value_StringListValue:
		return append([]string{}, k.StringListValue.GetValues()...)
	}
	return nil
}

func settingsToProto(s Settings, t Transport) *pb.ConfigureRequest {
	cfg := make(map[string]*pb.Value, len(s.Config))
	for k, v := range s.Config {
		cfg[k] = valueToProto(v)
	}
	return &pb.ConfigureRequest{
		ApiVersion: s.APIVersion,
		Common: &pb.Common{
			Pid:       s.Common.PID,
			Uid:       s.Common.UID,
			Comm:      s.Common.Comm,
			BtfFile:   s.Common.BTFFile,
			BufferKib: s.Common.BufferKiB,
		},
		Config: cfg,
		Transport: &pb.Transport{
			MaxBatchEvents:   t.MaxBatchEvents,
			MaxBatchBytes:    t.MaxBatchBytes,
			FlushIntervalMs:  uint32(t.FlushInterval / time.Millisecond),
			MaxFragmentBytes: t.MaxFragmentBytes,
			DataChannel:      t.DataChannel,
		},
		CheckOnly: s.CheckOnly,
	}
}

func settingsFromProto(r *pb.ConfigureRequest) (Settings, Transport, error) {
	cfg := make(Config, len(r.GetConfig()))
	for k, v := range r.GetConfig() {
		val := valueFromProto(v)
		if val == nil {
			return Settings{}, Transport{}, fmt.Errorf("config attribute %q has no value", k)
		}
		cfg[k] = val
	}
	c := r.GetCommon()
	t := r.GetTransport()
	return Settings{
			APIVersion: r.GetApiVersion(),
			Common: Common{
				PID:       c.GetPid(),
				UID:       c.GetUid(),
				Comm:      c.GetComm(),
				BTFFile:   c.GetBtfFile(),
				BufferKiB: c.GetBufferKib(),
			},
			Config:    cfg,
			CheckOnly: r.GetCheckOnly(),
		}, Transport{
			MaxBatchEvents:   t.GetMaxBatchEvents(),
			MaxBatchBytes:    t.GetMaxBatchBytes(),
			FlushInterval:    time.Duration(t.GetFlushIntervalMs()) * time.Millisecond,
			MaxFragmentBytes: t.GetMaxFragmentBytes(),
			DataChannel:      t.GetDataChannel(),
		}.withDefaults(), nil
}

func diagsToProto(ds Diagnostics) *pb.ConfigureResponse {
	out := &pb.ConfigureResponse{}
	for _, d := range ds {
		out.Diagnostics = append(out.Diagnostics, &pb.Diagnostic{
			Severity:  pb.Severity(d.Severity),
			Summary:   d.Summary,
			Detail:    d.Detail,
			Attribute: d.Attribute,
		})
	}
	return out
}

func diagsFromProto(r *pb.ConfigureResponse) Diagnostics {
	var ds Diagnostics
	for _, d := range r.GetDiagnostics() {
		sev := Severity(d.GetSeverity())
		if sev != SeverityWarning {
			sev = SeverityError
		}
		ds = append(ds, Diagnostic{Severity: sev, Summary: d.GetSummary(), Detail: d.GetDetail(), Attribute: d.GetAttribute()})
	}
	return ds
}

// eventToProto fills dst from ev and payload (which may be a fragment of
// ev.Payload), reusing dst's nested messages and buffers.
func eventToProto(dst *pb.Event, ev *Event, payload []byte) {
	dst.TimeUnixNano = uint64(ev.Time.UnixNano())
	dst.Kind = ev.Kind
	dst.Pid, dst.Tid, dst.Uid = ev.PID, ev.TID, ev.UID
	dst.Comm = ev.Comm
	dst.Payload = append(dst.Payload[:0], payload...)
	dst.Route = pb.Route(ev.Route)
	if ev.Conn.Known() || ev.Conn.Direction != DirectionUnknown {
		c := dst.Connection
		if c == nil {
			c = &pb.Connection{}
			dst.Connection = c
		}
		c.Id = ev.Conn.ID
		c.LocalAddr = appendAddr(c.LocalAddr[:0], ev.Conn.Local.Addr())
		c.LocalPort = uint32(ev.Conn.Local.Port())
		c.RemoteAddr = appendAddr(c.RemoteAddr[:0], ev.Conn.Remote.Addr())
		c.RemotePort = uint32(ev.Conn.Remote.Port())
		c.Direction = pb.Direction(ev.Conn.Direction)
	} else {
		dst.Connection = nil
	}
	n := len(ev.Fields)
	if cap(dst.Fields) < n {
		grown := make([]*pb.Field, n)
		copy(grown, dst.Fields[:cap(dst.Fields)])
		dst.Fields = grown
	}
	dst.Fields = dst.Fields[:n]
	for i, f := range ev.Fields {
		if dst.Fields[i] == nil {
			dst.Fields[i] = &pb.Field{}
		}
		dst.Fields[i].Key, dst.Fields[i].Value = f.Key, f.Value
	}
	dst.Fragment = nil
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return b
	}
	if a.Is4() {
		v := a.As4()
		return append(b, v[:]...)
	}
	v := a.As16()
	return append(b, v[:]...)
}

func addrFromBytes(b []byte, port uint32) netip.AddrPort {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, uint16(port))
}

// eventFromProto fills dst from p. dst.Payload aliases p.Payload; dst's
// Fields buffer is reused.
func eventFromProto(dst *Event, p *pb.Event, module string) {
	fields := dst.Fields[:0]
	*dst = Event{
		Time:    time.Unix(0, int64(p.GetTimeUnixNano())),
		Module:  module,
		Kind:    p.GetKind(),
		PID:     p.GetPid(),
		TID:     p.GetTid(),
		UID:     p.GetUid(),
		Comm:    p.GetComm(),
		Payload: p.GetPayload(),
		Route:   Route(p.GetRoute()),
	}
	if r := dst.Route; r != RouteOutput && r != RouteStream {
		dst.Route = RouteOutput
	}
	if c := p.GetConnection(); c != nil {
		dst.Conn = Connection{
			ID:        c.GetId(),
			Local:     addrFromBytes(c.GetLocalAddr(), c.GetLocalPort()),
			Remote:    addrFromBytes(c.GetRemoteAddr(), c.GetRemotePort()),
			Direction: Direction(c.GetDirection()),
		}
		if dst.Conn.Direction > DirectionIngress {
			dst.Conn.Direction = DirectionUnknown
		}
	}
	for _, f := range p.GetFields() {
		fields = append(fields, Field{Key: f.GetKey(), Value: f.GetValue()})
	}
	dst.Fields = fields
}

func probesToProto(ps []ProbeInfo) *pb.ProbesResponse {
	out := &pb.ProbesResponse{}
	for _, p := range ps {
		out.Probes = append(out.Probes, &pb.Probe{Program: p.Program, Kind: p.Kind, Target: p.Target, Binary: p.Binary})
	}
	return out
}

func probesFromProto(r *pb.ProbesResponse) []ProbeInfo {
	var out []ProbeInfo
	for _, p := range r.GetProbes() {
		out = append(out, ProbeInfo{Program: p.GetProgram(), Kind: p.GetKind(), Target: p.GetTarget(), Binary: p.GetBinary()})
	}
	return out
}
