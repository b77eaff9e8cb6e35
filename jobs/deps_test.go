package jobs_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestJobsImportsNoS3Client keeps the AWS SDK in package s3storage: a
// host that keeps its files on a local disk does not compile it. (That
// the core packages import nothing of River's is checked in sqlstore.)
func TestJobsImportsNoS3Client(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/agentbot/export/jobs").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	river := false
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/aws/") || strings.Contains(p, "minio") || strings.HasPrefix(p, "github.com/agentbot/export/jobs/") {
			t.Errorf("package jobs depends on %s", p)
		}
		river = river || strings.HasPrefix(p, "github.com/riverqueue/river")
	}
	if !river {
		t.Error("go list shows no River among package jobs' dependencies: the check is looking at the wrong thing")
	}
}
