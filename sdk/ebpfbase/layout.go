package ebpfbase

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// CheckLayout proves that the Go struct type of goValue has the layout of
// the C struct cName, as described by the BTF of the ELF object obj: same
// size, same number of fields, and field by field the same offset, size,
// kind (struct, array of the same length, integer of the same size and
// signedness; char arrays may be Go byte arrays) and name (the Go name
// lower-cased equals the C name without underscores; a Go field named _
// matches any name). Nested structs are compared recursively. The error
// names the first difference.
//
// Use it in a module's tests to keep the Go decoder of a record in step
// with kern/: the BTF is the compiler's own account of the C layout.
func CheckLayout(obj []byte, cName string, goValue any) error {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		return fmt.Errorf("reading BTF of the object: %w", err)
	}
	var st *btf.Struct
	if err := spec.TypeByName(cName, &st); err != nil {
		return fmt.Errorf("finding struct %s in the object's BTF: %w", cName, err)
	}
	gt := reflect.TypeOf(goValue)
	if gt == nil {
		return fmt.Errorf("comparing struct %s: nil Go value", cName)
	}
	if gt.Kind() == reflect.Pointer {
		gt = gt.Elem()
	}
	return compareStruct(st, gt, "struct "+cName)
}

func compareStruct(cs *btf.Struct, gt reflect.Type, path string) error {
	if gt.Kind() != reflect.Struct {
		return fmt.Errorf("%s: Go type %s is not a struct", path, gt)
	}
	if uintptr(cs.Size) != gt.Size() {
		return fmt.Errorf("%s: C size %d, Go size %d (%s)", path, cs.Size, gt.Size(), gt)
	}
	if len(cs.Members) != gt.NumField() {
		return fmt.Errorf("%s: C has %d fields, Go %s has %d", path, len(cs.Members), gt, gt.NumField())
	}
	for i, mem := range cs.Members {
		gf := gt.Field(i)
		fpath := path + "." + mem.Name
		if mem.BitfieldSize != 0 {
			return fmt.Errorf("%s: bit fields cannot be shared with Go", fpath)
		}
		if gf.Name != "_" && normalize(gf.Name) != normalize(mem.Name) {
			return fmt.Errorf("%s: Go field %d is %s", fpath, i, gf.Name)
		}
		if uintptr(mem.Offset.Bytes()) != gf.Offset {
			return fmt.Errorf("%s: C offset %d, Go offset of %s %d", fpath, mem.Offset.Bytes(), gf.Name, gf.Offset)
		}
		if err := compareType(mem.Type, gf.Type, fpath); err != nil {
			return err
		}
	}
	return nil
}

func compareType(ct btf.Type, gt reflect.Type, path string) error {
	ct = btf.UnderlyingType(ct)
	size, err := btf.Sizeof(ct)
	if err != nil {
		return fmt.Errorf("%s: sizing the C type: %w", path, err)
	}
	if uintptr(size) != gt.Size() {
		return fmt.Errorf("%s: C size %d, Go size %d (%s)", path, size, gt.Size(), gt)
	}
	switch t := ct.(type) {
	case *btf.Struct:
		return compareStruct(t, gt, path)
	case *btf.Array:
		if gt.Kind() != reflect.Array || uint32(gt.Len()) != t.Nelems {
			return fmt.Errorf("%s: C array of %d, Go %s", path, t.Nelems, gt)
		}
		return compareType(t.Type, gt.Elem(), path+"[]")
	case *btf.Int:
		var signed bool
		switch gt.Kind() {
		case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
			signed = true
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint, reflect.Uintptr, reflect.Bool:
		default:
			return fmt.Errorf("%s: C integer, Go %s", path, gt)
		}
		if t.Size > 1 && signed != (t.Encoding&btf.Signed != 0) {
			return fmt.Errorf("%s: C %s and Go %s differ in signedness", path, t.Name, gt)
		}
	case *btf.Union:
		if gt.Kind() != reflect.Array && gt.Kind() != reflect.Struct {
			return fmt.Errorf("%s: C union, Go %s (use a byte array)", path, gt)
		}
	}
	return nil
}

func normalize(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", ""))
}
