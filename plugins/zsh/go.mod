module github.com/ecaphost/ecaphost/plugins/zsh

go 1.26.0

replace (
	github.com/ecaphost/ecaphost/sdk => ../../sdk
	github.com/ecaphost/ecaphost/shared/proto => ../../shared/proto
)

require (
	github.com/cilium/ebpf v0.20.0
	github.com/ecaphost/ecaphost/sdk v0.0.0-00010101000000-000000000000
	github.com/hashicorp/go-hclog v1.6.3
)

require (
	github.com/avast/retry-go v3.0.0+incompatible // indirect
	github.com/creack/pty v1.1.24 // indirect
	github.com/ecaphost/ecaphost/shared/proto v0.0.0-00010101000000-000000000000 // indirect
	github.com/fatih/color v1.13.0 // indirect
	github.com/florianl/go-tc v0.4.5 // indirect
	github.com/gojue/ebpfmanager v0.5.0 // indirect
	github.com/golang/protobuf v1.5.4 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/hashicorp/errwrap v1.1.0 // indirect
	github.com/hashicorp/go-multierror v1.1.1 // indirect
	github.com/hashicorp/go-plugin v1.8.0 // indirect
	github.com/hashicorp/yamux v0.1.2 // indirect
	github.com/josharian/native v1.1.0 // indirect
	github.com/mattn/go-colorable v0.1.12 // indirect
	github.com/mattn/go-isatty v0.0.17 // indirect
	github.com/mdlayher/netlink v1.7.2 // indirect
	github.com/mdlayher/socket v0.5.1 // indirect
	github.com/oklog/run v1.1.0 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sync v0.23.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/grpc v1.85.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
