package elfsym

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"strings"
	"testing"
)

func TestDefinedFuncs(t *testing.T) {
	path := libc(t)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// malloc and free are functions; environ is data; the last is absent.
	got := DefinedFuncs(f, []string{"malloc", "free", "environ", "no_such_function_here"})
	if want := map[string]bool{"malloc": true, "free": true}; !maps.Equal(got, want) {
		t.Errorf("DefinedFuncs of %s = %v, want %v", path, got, want)
	}
}

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	text := dir + "/text"
	if err := os.WriteFile(text, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := libc(t)
	got, err := Inspect(path, []string{"malloc", "environ"})
	if err != nil || !maps.Equal(got, map[string]bool{"malloc": true}) {
		t.Errorf("Inspect(%s) = %v, %v", path, got, err)
	}
	for _, tc := range []struct {
		path string
		want error
	}{
		{dir + "/nope", fs.ErrNotExist},
		{dir, ErrNotRegular},
		{text, ErrNotELF},
	} {
		if _, err := Inspect(tc.path, []string{"malloc"}); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("Inspect(%s): %v, want %v naming the path", tc.path, err, tc.want)
		}
	}
}
