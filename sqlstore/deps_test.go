package sqlstore_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestHostPackagesImportOnlyTheStandardLibrary keeps drivers, routers and
// test libraries out of every package a host imports: they belong to
// tests and examples. Package jobs (River, its drivers, the S3 client)
// is for the hosts that import it only: no other package may reach it.
func TestHostPackagesImportOnlyTheStandardLibrary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	pkgs := []string{"github.com/agentbot/export", "github.com/agentbot/export/sqlstore",
		"github.com/agentbot/export/memstore", "github.com/agentbot/export/storetest"}
	out, err := exec.Command(goTool, append([]string{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if !strings.HasPrefix(p, "github.com/agentbot/export") || strings.Contains(p, "/internal/") || strings.Contains(p, "/examples/") ||
			strings.HasPrefix(p, "github.com/agentbot/export/jobs") {
			t.Errorf("a package hosts import depends on %s", p)
		}
	}
}
