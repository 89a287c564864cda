# SPDX-License-Identifier: Apache-2.0
#
# kern/bpf.mk - builds the eBPF objects the plugins embed.
#
# Included by the root Makefile; paths are relative to the repository root.
# Also usable alone: make -f kern/bpf.mk bpf
#
# Every kern/<module>_kern.c becomes plugins/<module>/bpf/<module>_kern_core.o
# (CO-RE, ring buffer). A source containing a line starting with
# "// ecap:noncore" also becomes <module>_kern_noncore.o (-DECAP_NONCORE: no
# vmlinux.h, perf event array; see kern/include/ecap.h).
#
# The objects are committed so that `go build` needs no clang. They are
# byte-reproducible with the pinned toolchain (clang-16, llvm-strip-16, the
# libbpf headers of libbpf-dev 1.1): -fdebug-prefix-map removes the checkout
# path and --strip-debug drops DWARF, keeping .BTF and .BTF.ext that CO-RE
# and the map definitions need. `make bpf-check` rebuilds into a temporary
# directory and fails when a committed object differs; a different clang
# version produces different bytes, so run it with the pinned one.

BPF_CLANG ?= clang-16
BPF_STRIP ?= llvm-strip-16
BPFTOOL   ?= bpftool
BPF_ARCH  ?= x86
# uapi headers of the build host for the non-CO-RE variant (asm/ptrace.h...)
BPF_UAPI_INCLUDE ?= /usr/include/$(shell uname -m)-linux-gnu
# Where objects go: $(BPF_DEST)/<module>/bpf/. bpf-check overrides it.
BPF_DEST ?= plugins

BPF_CFLAGS := -O2 -g -target bpf -D__TARGET_ARCH_$(BPF_ARCH) \
	-I kern/include -Wall -Werror -Wpadded \
	-fdebug-prefix-map=$(CURDIR)=.

BPF_SRCS    := $(wildcard kern/*_kern.c)
BPF_HEADERS := $(wildcard kern/include/*.h)
BPF_MODULES := $(patsubst kern/%_kern.c,%,$(BPF_SRCS))
BPF_NONCORE_MODULES := $(patsubst kern/%_kern.c,%,$(shell grep -l '^// ecap:noncore' $(BPF_SRCS) /dev/null))

BPF_OBJS := $(foreach m,$(BPF_MODULES),$(BPF_DEST)/$(m)/bpf/$(m)_kern_core.o) \
	$(foreach m,$(BPF_NONCORE_MODULES),$(BPF_DEST)/$(m)/bpf/$(m)_kern_noncore.o)

# Objects of the SDK itself: kern/sdk/<name>.c becomes
# sdk/ebpfbase/discover/bpf/<name>_core.o (BPF_SDK_DEST in bpf-check).
BPF_SDK_SRCS := $(wildcard kern/sdk/*.c)
BPF_SDK_DEST ?= sdk/ebpfbase/discover/bpf
BPF_SDK_OBJS := $(patsubst kern/sdk/%.c,$(BPF_SDK_DEST)/%_core.o,$(BPF_SDK_SRCS))

$(BPF_SDK_DEST)/%_core.o: kern/sdk/%.c $(BPF_HEADERS) bpf-force
	@mkdir -p $(@D)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(BPF_STRIP) --strip-debug $@.tmp -o $@
	@rm -f $@.tmp

# One pattern rule per variant; the module name is the stem, used twice in
# the path, hence the template. Objects are always rebuilt (bpf-force): the
# toolchain and flags matter as much as the sources, and it takes a second.
define bpf_module_rules
$(BPF_DEST)/$(1)/bpf/$(1)_kern_core.o: kern/$(1)_kern.c $(BPF_HEADERS) bpf-force
	@mkdir -p $$(@D)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $$< -o $$@.tmp
	$(BPF_STRIP) --strip-debug $$@.tmp -o $$@
	@rm -f $$@.tmp

$(BPF_DEST)/$(1)/bpf/$(1)_kern_noncore.o: kern/$(1)_kern.c $(BPF_HEADERS) bpf-force
	@mkdir -p $$(@D)
	$(BPF_CLANG) $(BPF_CFLAGS) -DECAP_NONCORE -I $(BPF_UAPI_INCLUDE) -c $$< -o $$@.tmp
	$(BPF_STRIP) --strip-debug $$@.tmp -o $$@
	@rm -f $$@.tmp
endef
$(foreach m,$(BPF_MODULES),$(eval $(call bpf_module_rules,$(m))))

.PHONY: bpf bpf-check vmlinux bpf-force

bpf-force:

bpf: $(BPF_OBJS) $(BPF_SDK_OBJS) ## Rebuild the eBPF objects of every plugin (clang-16)

bpf-check: ## Fail if the committed eBPF objects are not what kern/ builds
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(MAKE) --no-print-directory -f kern/bpf.mk BPF_DEST="$$tmp" BPF_SDK_DEST="$$tmp/sdk" bpf >/dev/null && \
	status=0 && \
	for o in "$$tmp/sdk/"*.o; do \
		c="sdk/ebpfbase/discover/bpf/$$(basename "$$o")"; \
		cmp -s "$$o" "$$c" || { echo "bpf-check: $$c is stale or missing: run make bpf" >&2; status=1; }; \
	done; \
	for m in $(BPF_MODULES); do \
		for o in "$$tmp/$$m/bpf/"*.o; do \
			c="plugins/$$m/bpf/$$(basename "$$o")"; \
			if ! cmp -s "$$o" "$$c"; then \
				echo "bpf-check: $$c is stale or missing: run make bpf" >&2; status=1; \
			fi; \
		done; \
		for c in plugins/$$m/bpf/*_kern_*.o; do \
			[ -e "$$c" ] || continue; \
			[ -e "$$tmp/$$m/bpf/$$(basename "$$c")" ] || { echo "bpf-check: $$c is not built from kern/: remove it" >&2; status=1; }; \
		done; \
	done; \
	exit $$status

vmlinux: ## Regenerate kern/include/vmlinux.h from the running kernel's BTF
	@{ printf '/* SPDX-License-Identifier: GPL-2.0 */\n/* Generated from the BTF of Linux %s (%s) by `make vmlinux`:\n *   bpftool btf dump file /sys/kernel/btf/vmlinux format c\n * Do not edit. */\n' "$$(uname -r | cut -d. -f1,2)" "$$(uname -m)"; \
	  $(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c; } > kern/include/vmlinux.h.tmp
	@mv kern/include/vmlinux.h.tmp kern/include/vmlinux.h
