package elfsym

import (
	"errors"
	"fmt"
	"os"
)

// ErrNotRegular is returned for a path that is not a regular file (a
// directory, a device...).
var ErrNotRegular = errors.New("not a regular file")

// Inspect checks that path is a regular ELF file and returns which of
// names it defines as functions (DefinedFuncs): what a module's Init asks
// of a binary named in its config before it plans probes on it. The error
// wraps fs.ErrNotExist, ErrNotRegular or ErrNotELF, or is another error of
// reading the file.
func Inspect(path string, names []string) (map[string]bool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return DefinedFuncs(f, names), nil
}
