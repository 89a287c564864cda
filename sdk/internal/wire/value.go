package wire

import pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"

// ValueToProto converts a config value (string, int64, bool or []string).
func ValueToProto(v any) *pb.Value {
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

// ValueFromProto is the config value v holds, nil for an empty value.
func ValueFromProto(v *pb.Value) any {
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
