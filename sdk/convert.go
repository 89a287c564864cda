package sdk

// This file converts the plugin's side of the contract: SDK types to the
// generated protobuf types of shared/proto and back, as the plugin's
// server needs them (sdk/pluginhost/convert.go is the host's side). Nothing
// else in the SDK builds or reads a pluginv1 message field by field.

import (
	"fmt"
	"time"

	"github.com/ecaphost/ecaphost/sdk/internal/wire"
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
			pa.Default = wire.ValueToProto(a.Default)
		}
		out.Attributes = append(out.Attributes, pa)
	}
	return out
}

func settingsFromProto(r *pb.ConfigureRequest) (Settings, transport, error) {
	cfg := make(Config, len(r.GetConfig()))
	for k, v := range r.GetConfig() {
		val := wire.ValueFromProto(v)
		if val == nil {
			return Settings{}, transport{}, fmt.Errorf("config attribute %q has no value", k)
		}
		cfg[k] = val
	}
	c := r.GetCommon()
	t := r.GetTransport()
	return Settings{
			APIVersion: r.GetApiVersion(),
			Common: Common{
				PID:         c.GetPid(),
				UID:         c.GetUid(),
				Comm:        c.GetComm(),
				BTFFile:     c.GetBtfFile(),
				BufferKiB:   c.GetBufferKib(),
				CgroupID:    c.GetCgroupId(),
				CgroupLevel: c.GetCgroupLevel(),
				CgroupPath:  c.GetCgroupPath(),
			},
			Config:    cfg,
			CheckOnly: r.GetCheckOnly(),
		}, transport{
			MaxBatchEvents:   t.GetMaxBatchEvents(),
			MaxBatchBytes:    t.GetMaxBatchBytes(),
			FlushInterval:    time.Duration(t.GetFlushIntervalMs()) * time.Millisecond,
			MaxFragmentBytes: t.GetMaxFragmentBytes(),
			DataChannel:      t.GetDataChannel(),
			BoostPID:         int(t.GetBoostPid()),
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

// eventToProto fills dst from ev and payload (which may be a fragment of
// ev.Payload), reusing dst's nested messages and buffers.
func eventToProto(dst *pb.Event, ev *Event, payload []byte) {
	dst.TimeUnixNano = uint64(ev.Time.UnixNano())
	dst.Kind = ev.Kind
	dst.Pid, dst.Tid, dst.Uid = ev.PID, ev.TID, ev.UID
	dst.Comm = ev.Comm
	dst.CgroupId = ev.CgroupID
	dst.Payload = append(dst.Payload[:0], payload...)
	dst.Route = pb.Route(ev.Route)
	if ev.Conn.Known() || ev.Conn.Direction != DirectionUnknown {
		c := dst.Connection
		if c == nil {
			c = &pb.Connection{}
			dst.Connection = c
		}
		c.Id = ev.Conn.ID
		c.LocalAddr = wire.AppendAddr(c.LocalAddr[:0], ev.Conn.Local.Addr())
		c.LocalPort = uint32(ev.Conn.Local.Port())
		c.RemoteAddr = wire.AppendAddr(c.RemoteAddr[:0], ev.Conn.Remote.Addr())
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

func probesToProto(ps []ProbeInfo) *pb.ProbesResponse {
	out := &pb.ProbesResponse{}
	for _, p := range ps {
		out.Probes = append(out.Probes, &pb.Probe{Program: p.Program, Kind: p.Kind, Target: p.Target, Binary: p.Binary})
	}
	return out
}
