package sdk

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestExportedCount holds the package to what an author needs: the numbers
// of exported identifiers it has are the ones its doc states, so growing
// it means changing the doc too. It also keeps the package free of the
// eBPF libraries, which belong to ebpfbase.
func TestExportedCount(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	var top, methods []string
	var doc string
	for _, f := range files {
		if f.Doc != nil {
			doc += f.Doc.Text()
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.Contains(p, "cilium/ebpf") || strings.Contains(p, "ebpfmanager") {
				t.Errorf("%s imports %s: the eBPF libraries belong to ebpfbase", fset.File(f.Pos()).Name(), p)
			}
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				switch {
				case !d.Name.IsExported():
				case d.Recv == nil:
					top = append(top, d.Name.Name)
				default:
					methods = append(methods, d.Name.Name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							top = append(top, s.Name.Name)
						}
					case *ast.ValueSpec:
						for _, id := range s.Names {
							if id.IsExported() {
								top = append(top, id.Name)
							}
						}
					}
				}
			}
		}
	}
	m := regexp.MustCompile(`exports (\d+) identifiers at package level and (\d+) methods`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("the package doc does not say how many identifiers the package exports")
	}
	wantTop, _ := strconv.Atoi(m[1])
	wantMethods, _ := strconv.Atoi(m[2])
	if len(top) != wantTop || len(methods) != wantMethods {
		t.Errorf("the package exports %d identifiers at package level and %d methods; its doc says %d and %d: "+
			"keep the author's package small, or change the doc with the reason\npackage level: %v",
			len(top), len(methods), wantTop, wantMethods, top)
	}
}
