package pluginhost

// This file converts the host's side of the contract: the generated
// protobuf types of shared/proto to SDK types and back, as the client
// needs them (sdk/convert.go is the plugin's side).

import (
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/internal/wire"
	pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
)

func infoFromProto(r *pb.DescribeResponse) (sdk.Info, error) {
	s, err := schemaFromProto(r.GetConfigSchema())
	if err != nil {
		return sdk.Info{}, err
	}
	return sdk.Info{
		Name:        r.GetName(),
		Version:     r.GetVersion(),
		Description: r.GetDescription(),
		APIVersions: r.GetApiVersions(),
		Schema:      s,
	}, nil
}

func schemaFromProto(p *pb.Schema) (sdk.Schema, error) {
	var s sdk.Schema
	for _, pa := range p.GetAttributes() {
		a := sdk.Attribute{
			Name:        pa.GetName(),
			Type:        sdk.Type(pa.GetType()),
			Required:    pa.GetRequired(),
			Description: pa.GetDescription(),
			OneOf:       pa.GetOneOf(),
		}
		if pa.Default != nil {
			a.Default = wire.ValueFromProto(pa.Default)
		}
		s.Attributes = append(s.Attributes, a)
	}
	if err := s.Validate(); err != nil {
		return sdk.Schema{}, err
	}
	return s, nil
}

func settingsToProto(s sdk.Settings, t Transport) *pb.ConfigureRequest {
	cfg := make(map[string]*pb.Value, len(s.Config))
	for k, v := range s.Config {
		cfg[k] = wire.ValueToProto(v)
	}
	return &pb.ConfigureRequest{
		ApiVersion: s.APIVersion,
		Common: &pb.Common{
			Pid:         s.Common.PID,
			Uid:         s.Common.UID,
			Comm:        s.Common.Comm,
			BtfFile:     s.Common.BTFFile,
			BufferKib:   s.Common.BufferKiB,
			CgroupId:    s.Common.CgroupID,
			CgroupLevel: s.Common.CgroupLevel,
			CgroupPath:  s.Common.CgroupPath,
		},
		Config: cfg,
		Transport: &pb.Transport{
			MaxBatchEvents:   t.MaxBatchEvents,
			MaxBatchBytes:    t.MaxBatchBytes,
			FlushIntervalMs:  uint32(t.FlushInterval / time.Millisecond),
			MaxFragmentBytes: t.MaxFragmentBytes,
			DataChannel:      t.DataChannel,
			BoostPid:         t.BoostPID,
		},
		CheckOnly: s.CheckOnly,
	}
}

func diagsFromProto(r *pb.ConfigureResponse) sdk.Diagnostics {
	var ds sdk.Diagnostics
	for _, d := range r.GetDiagnostics() {
		sev := sdk.Severity(d.GetSeverity())
		if sev != sdk.SeverityWarning {
			sev = sdk.SeverityError
		}
		ds = append(ds, sdk.Diagnostic{Severity: sev, Summary: d.GetSummary(), Detail: d.GetDetail(), Attribute: d.GetAttribute()})
	}
	return ds
}

// eventFromProto fills dst from p. dst.Payload aliases p.Payload; dst's
// Fields buffer is reused.
func eventFromProto(dst *sdk.Event, p *pb.Event, module string) {
	fields := dst.Fields[:0]
	*dst = sdk.Event{
		Time:     time.Unix(0, int64(p.GetTimeUnixNano())),
		Module:   module,
		Kind:     p.GetKind(),
		PID:      p.GetPid(),
		TID:      p.GetTid(),
		UID:      p.GetUid(),
		Comm:     p.GetComm(),
		CgroupID: p.GetCgroupId(),
		Payload:  p.GetPayload(),
		Route:    sdk.Route(p.GetRoute()),
	}
	if r := dst.Route; r != sdk.RouteOutput && r != sdk.RouteStream {
		dst.Route = sdk.RouteOutput
	}
	if c := p.GetConnection(); c != nil {
		dst.Conn = sdk.Connection{
			ID:        c.GetId(),
			Local:     wire.AddrFromBytes(c.GetLocalAddr(), c.GetLocalPort()),
			Remote:    wire.AddrFromBytes(c.GetRemoteAddr(), c.GetRemotePort()),
			Direction: sdk.Direction(c.GetDirection()),
		}
		if dst.Conn.Direction > sdk.DirectionIngress {
			dst.Conn.Direction = sdk.DirectionUnknown
		}
	}
	for _, f := range p.GetFields() {
		fields = append(fields, sdk.Field{Key: f.GetKey(), Value: f.GetValue()})
	}
	dst.Fields = fields
}

func probesFromProto(r *pb.ProbesResponse) []sdk.ProbeInfo {
	var out []sdk.ProbeInfo
	for _, p := range r.GetProbes() {
		out = append(out, sdk.ProbeInfo{Program: p.GetProgram(), Kind: p.GetKind(), Target: p.GetTarget(), Binary: p.GetBinary()})
	}
	return out
}
