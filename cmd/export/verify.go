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
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"

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
	// A compressed file, told by its magic bytes (a download saved as
	// received, whose digest is of those bytes, or -o file.json.gz): the
	// document is what it decodes to.
	if b, err = decodeFile(args[0], b, maxDecoded, stdout); err != nil {
		return err
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

// Magic bytes. No export starts with any of them: it starts with "{".
var (
	gzipMagic = []byte{0x1f, 0x8b}             // RFC 1952
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd} // RFC 8878
)

// fileCodings are the compressions verify decodes.
var fileCodings = []struct {
	name   string
	ext    string
	magic  []byte
	decode func(b []byte, limit int) ([]byte, error)
}{
	{"gzip", ".gz", gzipMagic, gunzip},
	{"zstd", ".zst", zstdMagic, unzstd},
}

// otherMagic names compressions verify does not read, so that such a
// file is named for what it is rather than called malformed JSON.
var otherMagic = []struct {
	name  string
	magic []byte
}{
	{"bzip2", []byte("BZh")},
	{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0}},
	{"zip", []byte("PK\x03\x04")},
	{"LZ4", []byte{0x04, 0x22, 0x4d, 0x18}},
}

// maxDecoded bounds what verify decodes from a compressed file, so that
// a file that expands without end (a "bomb") fails instead of taking the
// machine's memory.
const maxDecoded = 4 << 30

// maxZstdWindow bounds the window a zstd file may ask the decoder to keep
// (its memory): 128 MiB, what the zstd command decodes without --long.
// The endpoint's and the command's files use a few MiB.
const maxZstdWindow = 128 << 20

// decodeFile returns the document a file holds: b itself when it is
// plain, what it decodes to when its magic bytes say gzip or zstd,
// refused when it decodes to more than limit bytes, is cut or padded. The
// kind of file is its magic bytes' and not its name's, which may be
// wrong (a browser saves a download decoded under the name it was
// given); a name that disagrees is noted on w.
func decodeFile(name string, b []byte, limit int, w io.Writer) ([]byte, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", name)
	}
	named := "plain JSON"
	for _, c := range fileCodings {
		if strings.EqualFold(filepath.Ext(name), c.ext) {
			named = c.name
		}
	}
	for _, c := range fileCodings {
		if !bytes.HasPrefix(b, c.magic) {
			continue
		}
		out, err := c.decode(b, limit)
		if err != nil {
			return nil, fmt.Errorf("%s starts as %s but does not decode: %w", name, c.name, err)
		}
		fmt.Fprintf(w, "%s: %s, %d bytes decoded\n", name, c.name, len(out))
		if named != c.name {
			fmt.Fprintf(w, "%s: note: its name says %s, but it holds %s; checked as what it holds\n", name, named, c.name)
		}
		return out, nil
	}
	for _, m := range otherMagic {
		if bytes.HasPrefix(b, m.magic) {
			return nil, fmt.Errorf("%s is compressed with %s; verify reads plain, gzip and zstd files: decompress it first", name, m.name)
		}
	}
	if named != "plain JSON" {
		if first := bytes.TrimLeft(b, " \t\r\n"); len(first) == 0 || first[0] != '{' {
			return nil, fmt.Errorf("%s is named as %s, but it starts with neither %s's magic bytes (% x) nor an export's \"{\": it starts with % x", name, named, named, magicOf(named), b[:min(len(b), 4)])
		}
		fmt.Fprintf(w, "%s: note: its name says %s, but it holds plain JSON (saved decoded?); checked as what it holds\n", name, named)
	}
	return b, nil
}

func magicOf(name string) []byte {
	for _, c := range fileCodings {
		if c.name == name {
			return c.magic
		}
	}
	return nil
}

// tooLarge is the error for a file that decodes past limit.
func tooLarge(limit int) error {
	if limit%(1<<30) == 0 {
		return fmt.Errorf("it decodes to more than %d GiB", limit>>30)
	}
	return fmt.Errorf("it decodes to more than %d bytes", limit)
}

// gunzip decodes a whole gzip file, of one member (as the endpoint sends).
func gunzip(b []byte, limit int) ([]byte, error) {
	br := bytes.NewReader(b) // an io.ByteReader: gzip reads no further than its member
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(out) > limit {
		return nil, tooLarge(limit)
	}
	if br.Len() > 0 {
		return nil, fmt.Errorf("%d bytes follow the gzip stream", br.Len())
	}
	return out, nil
}

// unzstd decodes a whole zstd file, of one frame (as the endpoint and the
// command write). The frame's end is found first, by its block headers,
// so that anything after it is refused, as for gzip: a zstd reader would
// otherwise go on to decode a second frame, and skip a skippable one
// silently.
func unzstd(b []byte, limit int) ([]byte, error) {
	n, err := zstdFrameLen(b)
	if err != nil {
		return nil, err
	}
	if len(b) > n {
		return nil, fmt.Errorf("%d bytes follow the zstd frame", len(b)-n)
	}
	zr, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(out) > limit {
		return nil, tooLarge(limit)
	}
	return out, nil
}

// errZstdCut is a zstd frame that ends before its last block and
// checksum: a partial download or a cut copy.
var errZstdCut = errors.New("the zstd frame is cut short (a partial download or copy?)")

// zstdFrameLen returns the length of the zstd frame that b starts with,
// from its header and its blocks' headers (RFC 8878, 3.1.1), without
// decoding it.
func zstdFrameLen(b []byte) (int, error) {
	var h zstd.Header
	rest, err := h.DecodeAndStrip(b)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, errZstdCut
	}
	if err != nil {
		return 0, err
	}
	for last := false; !last; {
		if len(rest) < 3 {
			return 0, errZstdCut
		}
		hdr := uint32(rest[0]) | uint32(rest[1])<<8 | uint32(rest[2])<<16
		last = hdr&1 != 0
		size := int(hdr >> 3)
		switch hdr >> 1 & 3 {
		case 1: // RLE: one byte, repeated
			size = 1
		case 3:
			return 0, errors.New("a zstd block of the reserved type: the file is damaged")
		}
		rest = rest[3:]
		if len(rest) < size {
			return 0, errZstdCut
		}
		rest = rest[size:]
	}
	if h.HasCheckSum {
		if len(rest) < 4 {
			return 0, errZstdCut
		}
		rest = rest[4:]
	}
	return len(b) - len(rest), nil
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
