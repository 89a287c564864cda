package sdk

// APIVersions lists the module API versions this SDK implements, newest
// last. The host picks the highest version both sides list and passes it to
// Init (Settings.APIVersion); a plugin and host with no version in common
// are refused with a message naming both lists and the SDK to rebuild the
// plugin with. (The go-plugin handshake below it has a version of its own,
// which changes only when the transport breaks compatibility.)
//
// History:
//
//	1  Describe, Configure, Start, Events (batched, fragments, cumulative
//	   loss counters), Stop.
//	2  Events batches carry their events packed in one byte string
//	   (EventBatch.packed) instead of a message each, and travel on the
//	   data channel the host passes the plugin when Configure's Transport
//	   says so; otherwise on the Events stream. A host speaking 2 still
//	   reads version 1 plugins, and a version 2 plugin sends messages on
//	   the stream to a host that chose 1.
//	3  Events carry the cgroup v2 id of the task that produced them: packed
//	   records with flag 8 and Event.cgroup_id in messages. A version 3
//	   plugin sends neither to a host that chose 1 or 2.
//
// Changes of the Go API that leave the wire alone add no version: plugins
// built with the earlier SDK are still served. The last one:
//
//	Dec 2026  Module is the lifecycle the host drives (Info, Init, Start,
//	          Run, Stop, Close): Name, Events, DecodeFun, Decode and
//	          Dispatcher left it for ebpfbase.Hooks, and a module passes
//	          its hooks to ebpfbase.New instead of embedding the base and
//	          calling SetChild. The host's side (client, negotiation, data
//	          channel, handshake) moved to sdk/pluginhost.
var APIVersions = []uint32{1, 2, 3}
