# ecaphost: `make` builds, `make test` is what CI runs, `make help` lists targets.

GO      ?= go
BIN     := bin
PLUGINS := bash openssl nspr mysqld zsh postgres gotls
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/ecaphost/ecaphost/host/internal/cli.Version=$(VERSION)
# Every Go module of the workspace.
MODULES := shared/proto sdk host $(addprefix plugins/,$(PLUGINS))
# Fuzz by a count of inputs, not a duration: with a duration, a worker
# busy when time runs out made go test report "context deadline exceeded"
# (seen once in a CI run on a loaded machine).
FUZZTIME ?= 30000x

.PHONY: all build run test lint examples unit e2e fuzz standalone bench bpf bpf-check proto deps help clean

all: build ## build bin/ecaphost and every plugin into bin/plugins/

build: ## same as all
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ecaphost ./host/cmd/ecaphost
	@mkdir -p $(BIN)/plugins
	@for p in $(PLUGINS); do \
	  echo "$(GO) build -o $(BIN)/plugins/ecaphost-plugin-$$p ./plugins/$$p"; \
	  $(GO) build -o $(BIN)/plugins/ecaphost-plugin-$$p ./plugins/$$p || exit 1; \
	done
	@chmod 0755 $(BIN)/ecaphost $(BIN)/plugins/*

run: build ## build, then capture with the embedded default config (needs root): Ctrl-C stops
	$(BIN)/ecaphost run

test: build deps lint unit examples standalone fuzz ## everything CI runs: lint, unit, contract and end-to-end tests, fuzzing, standalone builds

deps: ## install (as root on Debian) the programs the tests drive, when missing
	@scripts/test-deps.sh

# -p 1: the end-to-end tests of different packages attach probes and drive
# TLS traffic system-wide; run side by side they load a 2-CPU machine enough
# to overflow each other's buffers (counted, but a test wanting every byte
# then fails). -timeout 20m: the openssl module's end-to-end tests took
# 6 min at load 15 and passed 10 min (go test's default) at load 14-24.
unit: ## go vet and go test in every module (end-to-end tests included; they need root)
	$(GO) vet $(addsuffix /...,$(addprefix ./,$(MODULES)))
	$(GO) test -count=1 -p 1 -timeout 20m $(addsuffix /...,$(addprefix ./,$(MODULES)))
	cd test/ecosystem && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -count=1 ./...

# golangci-lint, pinned in tools/go.mod (a module of its own, outside the
# workspace, so that its dependencies never meet ours), built once into bin/.
GOLANGCI := $(BIN)/golangci-lint
$(GOLANGCI): tools/go.mod tools/go.sum
	cd tools && GOWORK=off $(GO) build -o ../$(GOLANGCI) github.com/golangci/golangci-lint/v2/cmd/golangci-lint

lint: $(GOLANGCI) ## golangci-lint (.golangci.yaml) on every module of the workspace and on examples/gnutls
	scripts/lint.sh $(GOLANGCI) $(MODULES) -- examples/gnutls

examples: ## vet and test the out-of-tree example modules (GOWORK=off, as a third party builds them)
	cd examples/gnutls && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -count=1 ./...

fuzz: ## run each fuzz target for FUZZTIME
	$(GO) test -run '^$$' -fuzz '^FuzzBatchDecode$$' -fuzztime $(FUZZTIME) ./sdk/pluginhost
	$(GO) test -run '^$$' -fuzz '^FuzzPackedDecode$$' -fuzztime $(FUZZTIME) ./sdk/pluginhost
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeHeader$$' -fuzztime $(FUZZTIME) ./sdk/ebpfbase
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./sdk/shellrec
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./sdk/tlsrecord
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./plugins/nspr/nsprmod
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./plugins/mysqld/mysqldmod
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./plugins/postgres/pgmod
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./plugins/gotls/gotlsmod
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeKeys$$' -fuzztime $(FUZZTIME) ./plugins/openssl/opensslmod
	$(GO) test -run '^$$' -fuzz '^FuzzPacketEnds$$' -fuzztime $(FUZZTIME) ./plugins/openssl/opensslmod
	$(GO) test -run '^$$' -fuzz '^FuzzDecoder$$' -fuzztime $(FUZZTIME) ./host/internal/stream
	$(GO) test -run '^$$' -fuzz '^FuzzDecoderCut$$' -fuzztime $(FUZZTIME) ./host/internal/stream
	$(GO) test -run '^$$' -fuzz '^FuzzH1Head$$' -fuzztime $(FUZZTIME) ./host/internal/stream
	$(GO) test -run '^$$' -fuzz '^FuzzJSONSameAsReference$$' -fuzztime $(FUZZTIME) ./host/internal/output

standalone: ## build every module alone (GOWORK=off), as a third party would
	@for m in $(MODULES); do \
	  echo "cd $$m && GOWORK=off go build ./..."; \
	  (cd $$m && GOWORK=off $(GO) build -o /dev/null ./...) || exit 1; \
	done

bench: build ## benchmarks: each part alone (Go), then each module under load with and without capture (each run appended to docs/bench/MODULE.md)
	$(GO) test -run '^$$' -bench . -benchmem ./sdk ./sdk/pluginhost ./sdk/ebpfbase ./host/internal/stream ./host/internal/output ./plugins/openssl/...
	WRITE_DOC=1 scripts/bench-openssl.sh
	WRITE_DOC=1 scripts/bench-mysqld.sh
	WRITE_DOC=1 scripts/bench-postgres.sh
	WRITE_DOC=1 scripts/bench-gotls.sh
	WRITE_DOC=1 scripts/bench-otlp.sh

include kern/bpf.mk

# The out-of-tree example modules build their objects with their own
# Makefiles, from the same headers.
bpf: bpf-examples
bpf-check: bpf-check-examples
.PHONY: bpf-examples bpf-check-examples
bpf-examples:
	$(MAKE) --no-print-directory -C examples/gnutls bpf
bpf-check-examples:
	$(MAKE) --no-print-directory -C examples/gnutls bpf-check

proto: ## regenerate shared/proto (protoc from Debian, generators pinned in shared/proto/go.mod)
	cd shared/proto && $(GO) build -o .bin/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	cd shared/proto && PATH="$$PWD/.bin:$$PATH" protoc --go_out=. --go_opt=paths=source_relative \
	  --go-grpc_out=. --go-grpc_opt=paths=source_relative pluginv1/plugin.proto
	cd shared/proto && PATH="$$PWD/.bin:$$PATH" protoc --go_out=. --go_opt=paths=source_relative outputv1/output.proto

clean: ## remove bin/
	rm -rf $(BIN)

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 14
