package export_test

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReadmeSnippetsCompile type-checks every ```go block of README.md,
// against this module's packages as they are, so that none can rot:
//
//   - a block that starts with "package" is a whole file, and must be
//     exactly right (an unused import or variable fails too);
//   - a block of declarations (type, func) is checked at package level,
//     with the names it leaves undefined that package export has aliased
//     to export's (so the interfaces shown must be export's, method for
//     method);
//   - any other block is statements, checked in a function that has ctx
//     (context.Context) and dsn (string), as a host's code has them.
//
// Fragments get the imports of the package names they use (export,
// sqlstore, sql, http...), and may leave a variable unused. Identifiers
// starting with "my" (mystore, myFixture) stand for the reader's own code
// and may be undefined; nothing else may.
func TestReadmeSnippetsCompile(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := goBlocks(readme)
	if len(blocks) < 5 {
		t.Fatalf("found %d Go blocks in README.md; the test's parser is broken", len(blocks))
	}
	fset := token.NewFileSet()
	imp := exportImporter(t, fset)
	for _, b := range blocks {
		t.Run(fmt.Sprintf("line_%d", b.line), func(t *testing.T) {
			src, kind := wrap(b.code)
			f, err := parser.ParseFile(fset, fmt.Sprintf("README.md (the block at line %d)", b.line), src, parser.ParseComments)
			if err != nil {
				t.Fatalf("does not parse: %v\n%s", err, src)
			}
			var errs []types.Error
			conf := types.Config{Importer: imp, Error: func(err error) { errs = append(errs, err.(types.Error)) }}
			pkg, _ := conf.Check("snippet", fset, []*ast.File{f}, nil)
			if kind == declarations {
				// Undefined names of package export: alias them, check again.
				var aliases []string
				for _, e := range errs {
					name, ok := strings.CutPrefix(e.Msg, "undefined: ")
					if ok && token.IsExported(name) && exportScope(imp).Lookup(name) != nil && !slices.Contains(aliases, name) {
						aliases = append(aliases, name)
					}
				}
				if len(aliases) > 0 {
					for _, a := range aliases {
						src += "\ntype " + a + " = export." + a
					}
					f, err = parser.ParseFile(fset, fmt.Sprintf("README.md (the block at line %d)", b.line), src, parser.ParseComments)
					if err != nil {
						t.Fatal(err)
					}
					errs = nil
					pkg, _ = conf.Check("snippet", fset, []*ast.File{f}, nil)
				}
			}
			for _, e := range errs {
				if kind != file && e.Soft && (strings.HasPrefix(e.Msg, "declared and not used") || strings.Contains(e.Msg, "imported and not used")) {
					continue
				}
				if name, ok := strings.CutPrefix(e.Msg, "undefined: "); ok && strings.HasPrefix(name, "my") {
					continue
				}
				t.Errorf("%s: %s", e.Fset.Position(e.Pos), e.Msg)
			}
			if t.Failed() {
				t.Logf("as checked:\n%s", src)
			}
			if kind == declarations && pkg != nil {
				sameAsExport(t, pkg, exportScope(imp))
			}
		})
	}
}

type block struct {
	line int // of the opening fence
	code string
}

// goBlocks returns the ```go blocks of a Markdown file.
func goBlocks(md []byte) []block {
	var out []block
	var cur *block
	var body strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(md))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```go":
			cur = &block{line: n}
			body.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.code = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		}
	}
	return out
}

type snippetKind int

const (
	file snippetKind = iota
	declarations
	statements
)

// knownPackages are the imports a fragment gets for the names it uses.
var knownPackages = map[string]string{
	"export": "github.com/agentbot/export", "sqlstore": "github.com/agentbot/export/sqlstore", "pgxrows": "github.com/agentbot/export/sqlstore/pgxrows",
	"memstore": "github.com/agentbot/export/memstore", "storetest": "github.com/agentbot/export/storetest",
	"sql": "database/sql", "http": "net/http", "context": "context", "iter": "iter", "testing": "testing",
	"slog": "log/slog", "time": "time", "errors": "errors", "fmt": "fmt", "os": "os", "log": "log",
	"io": "io", "zstd": "github.com/klauspost/compress/zstd", "gzip": "github.com/klauspost/compress/gzip",
	"jobs": "github.com/agentbot/export/jobs", "s3storage": "github.com/agentbot/export/jobs/s3storage",
	"riversqlite": "github.com/riverqueue/river/riverdriver/riversqlite", "riverdatabasesql": "github.com/riverqueue/river/riverdriver/riverdatabasesql",
	"s3": "github.com/aws/aws-sdk-go-v2/service/s3", "aws": "github.com/aws/aws-sdk-go-v2/aws",
}

var selector = regexp.MustCompile(`\b([a-z][a-z0-9]*)\.[A-Z]`)

// wrap makes a snippet a Go file.
func wrap(code string) (string, snippetKind) {
	trimmed := strings.TrimSpace(code)
	if strings.HasPrefix(trimmed, "package ") {
		return code, file
	}
	var imports []string
	for _, m := range selector.FindAllStringSubmatch(code, -1) {
		if path, ok := knownPackages[m[1]]; ok && !slices.Contains(imports, path) {
			imports = append(imports, path)
		}
	}
	kind := statements
	if strings.HasPrefix(trimmed, "type ") || strings.HasPrefix(trimmed, "func ") {
		kind = declarations
		if !slices.Contains(imports, knownPackages["export"]) {
			imports = append(imports, knownPackages["export"]) // for the aliases
		}
	} else if !slices.Contains(imports, "context") {
		imports = append(imports, "context") // for ctx
	}
	var b strings.Builder
	b.WriteString("package snippet\n\nimport (\n")
	for _, p := range imports {
		fmt.Fprintf(&b, "\t%q\n", p)
	}
	b.WriteString(")\n\n")
	if kind == declarations {
		b.WriteString(code)
	} else {
		b.WriteString("func _(ctx context.Context, dsn string) error {\n" + code + "\treturn nil\n}\n")
	}
	return b.String(), kind
}

// sameAsExport checks that each interface a snippet declares under a
// name of package export has export's methods, with the same signatures.
func sameAsExport(t *testing.T, pkg *types.Package, export *types.Scope) {
	unqualified := func(*types.Package) string { return "" }
	for _, name := range pkg.Scope().Names() {
		mine, ok := pkg.Scope().Lookup(name).Type().Underlying().(*types.Interface)
		if !ok {
			continue
		}
		obj := export.Lookup(name)
		if obj == nil {
			continue
		}
		theirs, ok := obj.Type().Underlying().(*types.Interface)
		if !ok {
			t.Errorf("%s is an interface in the README, not in package export", name)
			continue
		}
		sig := func(i *types.Interface) []string {
			var s []string
			for m := range i.Methods() {
				s = append(s, m.Name()+types.TypeString(m.Type(), unqualified))
			}
			slices.Sort(s)
			return s
		}
		if got, want := sig(mine), sig(theirs); !slices.Equal(got, want) {
			t.Errorf("the README's %s is not export.%s:\n README: %v\n export: %v", name, name, got, want)
		}
	}
}

// exportImporter imports packages from the export data that go list
// builds (so snippets see the module's packages as they are now).
func exportImporter(t *testing.T, fset *token.FileSet) types.Importer {
	pkgs := []string{"github.com/jackc/pgx/v5/stdlib", "modernc.org/sqlite", "github.com/go-sql-driver/mysql"}
	for _, p := range knownPackages {
		pkgs = append(pkgs, p)
	}
	out, err := exec.Command("go", append([]string{"list", "-export", "-deps", "-f", "{{.ImportPath}}={{.Export}}"}, pkgs...)...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -export: %v\n%s", err, stderr)
	}
	files := map[string]string{}
	for line := range strings.Lines(string(out)) {
		path, file, _ := strings.Cut(strings.TrimSpace(line), "=")
		files[path] = file
	}
	return importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := files[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %q (not among the packages go list built)", path)
		}
		return os.Open(f)
	})
}

func exportScope(imp types.Importer) *types.Scope {
	pkg, err := imp.Import("github.com/agentbot/export")
	if err != nil {
		panic(err)
	}
	return pkg.Scope()
}
