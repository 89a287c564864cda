package tlsrecord

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/ecaphost/ecaphost/sdk/harness"
)

// moduleObjects are the committed objects of the modules built on tls.h,
// relative to the repository root.
var moduleObjects = []string{
	"plugins/openssl/bpf/openssl_kern_core.o",
	"plugins/nspr/bpf/nspr_kern_core.o",
}

func repoFile(t *testing.T, rel string) []byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", rel))
	if err != nil {
		harness.SkipOrFail(t, "reading %s (the test needs the repository checkout): %v", rel, err)
	}
	return b
}

// TestLayout proves Record against every module object built on tls.h.
func TestLayout(t *testing.T) {
	for _, rel := range moduleObjects {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			if err := CheckLayout(repoFile(t, rel)); err != nil {
				t.Error(err)
			}
		})
	}
	if unsafe.Sizeof(Record{}) != DataOffset+ChunkMax {
		t.Errorf("Record is %d bytes, want %d", unsafe.Sizeof(Record{}), DataOffset+ChunkMax)
	}
}

func TestCheckLayoutRejectsOtherObjects(t *testing.T) {
	err := CheckLayout(repoFile(t, "plugins/bash/bpf/bash_kern_core.o"))
	if err == nil || !strings.Contains(err.Error(), "tls_data_event") {
		t.Errorf("the bash object, without struct tls_data_event: %v", err)
	}
	if err := checkOffsets(); err != nil {
		t.Error(err)
	}
}
