package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/agentbot/export"
)

// verify checks a file against the format: first strictly as data (every
// key, type, timestamp form and order; export.Decode names the first
// problem by its path), then as bytes: a file that holds only the format's
// sections must be exactly what the endpoint writes for that data.
func verify(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageError{errors.New("verify takes one file")}
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	doc, err := export.Decode(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s is not a valid export: %w", args[0], err)
	}
	summary := fmt.Sprintf("%s: a valid export, format %s, of user %q exported at %s: %d agents, %d scheduled tasks, %d workflows",
		args[0], doc.Version, doc.User.ID, doc.ExportedAt.UTC().Format("2006-01-02T15:04:05.000Z"), len(doc.Agents), len(doc.ScheduledTasks), len(doc.Workflows))
	want := doc.Bytes()
	// want ends with workflows' "]" and "\n}"; sections added by the host
	// would follow that "]" with a comma.
	formatPart := want[:len(want)-2]
	if bytes.HasPrefix(b, formatPart) && len(b) > len(formatPart) && b[len(formatPart)] == ',' {
		// Sections added by the host follow workflows; the format's part
		// is checked byte for byte up to them.
		fmt.Fprintln(stdout, summary+", and sections added by the host")
		return nil
	}
	if !bytes.Equal(b, want) {
		line, got, exp := firstDifference(string(b), string(want))
		return fmt.Errorf("%s holds valid data, but not in the bytes the endpoint writes: line %d is %q, want %q", args[0], line, got, exp)
	}
	fmt.Fprintln(stdout, summary)
	return nil
}

// firstDifference returns the first line (1-based) where a and b differ,
// and that line of each.
func firstDifference(a, b string) (int, string, string) {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(la), len(lb)) {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y || i >= len(la) || i >= len(lb) {
			return i + 1, x, y
		}
	}
	return 0, "", ""
}
