package main

import (
	"bytes"
	"compress/gzip"
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
	digest := new(string)
	fs := verifyFlagSet(digest)
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
	// A gzip-coded download saved as received (the digest is of those
	// bytes): the document is what it decodes to.
	if bytes.HasPrefix(b, gzipMagic) {
		if b, err = gunzip(b); err != nil {
			return fmt.Errorf("%s starts as gzip but does not decode: %w", args[0], err)
		}
		fmt.Fprintf(stdout, "%s: gzip, %d bytes decoded\n", args[0], len(b))
	}
	doc, err := export.Decode(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s is not a well-formed export: %w", args[0], err)
	}
	summary := fmt.Sprintf("%s: well-formed export, format %s, of user %q exported at %s: %d agents, %d scheduled tasks, %d workflows",
		args[0], doc.Version, doc.User.ID, doc.ExportedAt.UTC().Format("2006-01-02T15:04:05.000Z"), len(doc.Agents), len(doc.ScheduledTasks), len(doc.Workflows))
	if trimmed := bytes.TrimRight(b, " \t\r\n"); len(trimmed) < len(b) {
		return fmt.Errorf("%s holds well-formed data, but not in the bytes the endpoint writes: it ends with %q after the document's closing \"}\", and the endpoint writes nothing after it (an editor or a tool added it)",
			args[0], b[len(trimmed):])
	}
	want := doc.Bytes()
	// want ends with workflows' "]" and "\n}"; sections added by the host
	// would follow that "]" with a comma.
	formatPart := want[:len(want)-2]
	hostSections := bytes.HasPrefix(b, formatPart) && len(b) > len(formatPart) && b[len(formatPart)] == ','
	if !hostSections && !bytes.Equal(b, want) {
		return fmt.Errorf("%s holds well-formed data, but not in the bytes the endpoint writes: %s", args[0], describeDifference(b, want))
	}
	if hostSections {
		// Sections added by the host follow workflows; the format's part
		// is checked byte for byte up to them.
		summary += ", and sections added by the host"
	}
	fmt.Fprintln(stdout, summary)
	fmt.Fprintln(stdout, "checked: every key, type, timestamp form and order the format has, and the bytes the endpoint writes for this data;")
	if *digest == "" {
		fmt.Fprintln(stdout, "not checked: that the values are the ones the database held (an edited value is still well-formed; -digest checks the file against the download's Repr-Digest)")
	} else {
		fmt.Fprintln(stdout, "and the digest: the file is the download, unchanged")
	}
	return nil
}

// gzipMagic starts every gzip stream (RFC 1952); no export does ("{").
var gzipMagic = []byte{0x1f, 0x8b}

// maxDecoded bounds what verify decodes from a gzip file, so that a file
// that expands without end (a "gzip bomb") fails instead of taking the
// machine's memory.
const maxDecoded = 4 << 30

// gunzip decodes a whole gzip file, of one member (as the endpoint sends).
func gunzip(b []byte) ([]byte, error) {
	br := bytes.NewReader(b) // an io.ByteReader: gzip reads no further than its member
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	out, err := io.ReadAll(io.LimitReader(zr, maxDecoded+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxDecoded {
		return nil, fmt.Errorf("it decodes to more than %d GiB", maxDecoded>>30)
	}
	if br.Len() > 0 {
		return nil, fmt.Errorf("%d bytes follow the gzip stream", br.Len())
	}
	return out, nil
}

// describeDifference names how got departs from want, the endpoint's
// bytes for the same data, with a short quoted excerpt of each where they
// first differ.
func describeDifference(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	line := bytes.Count(got[:i], []byte("\n")) + 1
	col := i - (bytes.LastIndexByte(got[:i], '\n') + 1) + 1
	at := fmt.Sprintf("at line %d, column %d the file has %s where the endpoint writes %s", line, col, excerpt(got, i), excerpt(want, i))
	switch {
	case !bytes.Contains(got, []byte("\n")):
		return "the file is compact JSON on one line; the endpoint writes it pretty-printed, one key per line, indented by two spaces (as JSON.stringify(doc, null, 2)): " + at
	case bytes.Contains(got, []byte("\r\n")):
		return "the file has Windows line ends (CRLF); the endpoint writes LF only: " + at
	case i < len(got) && got[i] == '\t':
		return "the file is indented with tabs; the endpoint indents by two spaces: " + at
	}
	return at
}

// excerpt quotes up to 16 bytes of b before i (within i's line) and 24
// from i, marking the cuts with "...".
func excerpt(b []byte, i int) string {
	from := max(i-16, bytes.LastIndexByte(b[:i], '\n')+1)
	to := min(i+24, len(b))
	if nl := bytes.IndexByte(b[i:to], '\n'); nl >= 0 {
		to = i + nl + 1 // the line's end, newline included
	}
	q := fmt.Sprintf("%q", b[from:to])
	if from > 0 && b[from-1] != '\n' {
		q = "..." + q
	}
	if to < len(b) && b[to-1] != '\n' {
		q += "..."
	}
	if i >= len(b) {
		return "the end of the file"
	}
	return q
}

// verifyFlagSet declares verify's flags; -help prints them.
func verifyFlagSet(digest *string) *flag.FlagSet {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(digest, "digest", "", "first check that the file is, byte for byte, the download whose Repr-Digest header was `sha-256=:...:`")
	return fs
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
