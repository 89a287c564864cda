package ebpfbase

import (
	"errors"
	"fmt"
	"os"
)

// systemBTFPath is where the kernel exposes its own BTF; a variable so
// tests can point it elsewhere.
var systemBTFPath = "/sys/kernel/btf/vmlinux"

// ErrNoBTF is returned by Start when the kernel has no BTF, no btf_file is
// set and the module has no non-CO-RE object.
var ErrNoBTF = errors.New("no kernel BTF")

type bytecodeChoice struct {
	object []byte
	core   bool
	// btfFile is the btf_file setting, loaded as the kernel types for
	// CO-RE; "" lets cilium/ebpf read the kernel's own.
	btfFile string
	reason  string
}

func (c bytecodeChoice) variant() string {
	if c.core {
		return "CO-RE"
	}
	return "non-CO-RE"
}

func regularFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return nil
}

// chooseBytecode picks the object to load. btfFile is the btf_file
// setting, sysBTF the path of the kernel's BTF.
func chooseBytecode(spec *Spec, btfFile, sysBTF string, mode BytecodeMode) (bytecodeChoice, error) {
	hasCore, hasNonCore := len(spec.CoreObject) > 0, len(spec.NonCoreObject) > 0
	if !hasCore && !hasNonCore {
		return bytecodeChoice{}, errors.New("choosing bytecode: the module has no eBPF object")
	}
	nonCore := func(reason string) (bytecodeChoice, error) {
		return bytecodeChoice{object: spec.NonCoreObject, reason: reason}, nil
	}
	if btfFile != "" {
		if err := regularFile(btfFile); err != nil {
			return bytecodeChoice{}, fmt.Errorf("reading btf_file: %w", err)
		}
	}

	switch mode {
	case BytecodeNonCORE:
		if !hasNonCore {
			return bytecodeChoice{}, errors.New("choosing bytecode: non-CO-RE requested but the module has no non-CO-RE object")
		}
		return nonCore("non-CO-RE requested")
	case BytecodeCORE:
		if !hasCore {
			return bytecodeChoice{}, errors.New("choosing bytecode: CO-RE requested but the module has no CO-RE object")
		}
	case BytecodeAuto:
	default:
		return bytecodeChoice{}, fmt.Errorf("choosing bytecode: unknown mode %d", mode)
	}

	if btfFile != "" {
		if !hasCore {
			return nonCore("the module has no CO-RE object; btf_file is not needed")
		}
		return bytecodeChoice{object: spec.CoreObject, core: true, btfFile: btfFile, reason: "btf_file is set"}, nil
	}
	sysErr := regularFile(sysBTF)
	if sysErr == nil && hasCore {
		return bytecodeChoice{object: spec.CoreObject, core: true, reason: "the kernel has BTF at " + sysBTF}, nil
	}
	if hasNonCore && mode == BytecodeAuto {
		if sysErr == nil {
			return nonCore("the module has no CO-RE object")
		}
		return nonCore("the kernel has no BTF at " + sysBTF)
	}
	return bytecodeChoice{}, fmt.Errorf("choosing bytecode: the kernel has no BTF at %s (%v) and the module has no non-CO-RE object: "+
		"set btf_file to a BTF file of this kernel (from btfhub-archive, or made with pahole/bpftool from its vmlinux): %w",
		sysBTF, sysErr, ErrNoBTF)
}
