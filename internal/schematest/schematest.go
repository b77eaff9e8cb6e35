// Package schematest validates documents against the published JSON
// Schema, docs/export.schema.json, for the tests of every store. It is
// for tests only: the schema validator must never become a dependency of
// a package that a host imports.
package schematest

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Path is where the schema lives in the repository.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "export.schema.json")
}

var (
	once   sync.Once
	schema *jsonschema.Schema
	err    error
)

// Schema compiles the published schema once.
func Schema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	once.Do(func() {
		var f *os.File
		if f, err = os.Open(Path()); err != nil {
			return
		}
		defer f.Close()
		var doc any
		if doc, err = jsonschema.UnmarshalJSON(f); err != nil {
			return
		}
		c := jsonschema.NewCompiler()
		if err = c.AddResource("export.schema.json", doc); err != nil {
			return
		}
		schema, err = c.Compile("export.schema.json")
	})
	if err != nil {
		t.Fatalf("compiling %s: %v", Path(), err)
	}
	return schema
}

// Check returns the schema's verdict on a document's bytes.
func Check(t testing.TB, document []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(document))
	if err != nil {
		return err
	}
	return Schema(t).Validate(inst)
}

// Validate fails the test if the document does not satisfy the schema.
func Validate(t testing.TB, document []byte) {
	t.Helper()
	if err := Check(t, document); err != nil {
		t.Fatalf("the document does not satisfy docs/export.schema.json: %v", err)
	}
}
