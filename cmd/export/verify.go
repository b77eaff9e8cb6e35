package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
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
//
// With -digest, the Repr-Digest header of the response the file came from
// (sha-256=:<base64>:, RFC 9530), it first checks that the file holds
// exactly the bytes the endpoint sent.
func verify(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	digest := fs.String("digest", "", "the response's Repr-Digest header, sha-256=:...:")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	args = fs.Args()
	if len(args) != 1 {
		return usageError{errors.New("verify takes one file")}
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	if *digest != "" {
		if err := checkDigest(args[0], b, *digest); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: its SHA-256 matches the digest: these are the bytes the endpoint sent\n", args[0])
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

// checkDigest compares b's SHA-256 with the sha-256 member of a
// Repr-Digest field value (RFC 9530: a dictionary, so other algorithms
// may be listed too; only sha-256 is checked).
func checkDigest(name string, b []byte, field string) error {
	var want []byte
	for member := range strings.SplitSeq(field, ",") {
		key, value, _ := strings.Cut(strings.TrimSpace(member), "=")
		if !strings.EqualFold(key, "sha-256") {
			continue
		}
		raw, ok := strings.CutPrefix(value, ":")
		if raw, ok = strings.CutSuffix(raw, ":"); !ok {
			return usageError{fmt.Errorf("-digest: the sha-256 value %q is not of the form :<base64>:", value)}
		}
		var err error
		if want, err = base64.StdEncoding.DecodeString(raw); err != nil || len(want) != sha256.Size {
			return usageError{fmt.Errorf("-digest: the sha-256 value %q is not 32 bytes in base64", value)}
		}
	}
	if want == nil {
		return usageError{fmt.Errorf("-digest: no sha-256 in %q (want the Repr-Digest header, sha-256=:<base64>:)", field)}
	}
	got := sha256.Sum256(b)
	if !bytes.Equal(got[:], want) {
		return fmt.Errorf("%s does not match the digest: its SHA-256 is sha-256=:%s:, the digest says sha-256=:%s: (the file was changed after it was downloaded, or the digest is another download's)",
			name, base64.StdEncoding.EncodeToString(got[:]), base64.StdEncoding.EncodeToString(want))
	}
	return nil
}
