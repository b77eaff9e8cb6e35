// Command export is for support staff answering a data-access request
// that arrived by email, with no browser session: it writes one user's
// export straight from the database, byte for byte the document the
// endpoint serves, and checks export files.
//
//	go run ./cmd/export -sqlite app.db -user cl9x... -o export.json
//	go run ./cmd/export -postgres 'postgres://reader@db/app' -user cl9x... -o ./requests/
//	go run ./cmd/export -sqlite app.db -user cl9x... -o export.json.zst
//	go run ./cmd/export -mysql 'reader:pw@tcp(db:3306)/app' -layout snake_case -user 42 > export.json
//	go run ./cmd/export verify export.json
//	go run ./cmd/export verify -digest 'sha-256=:...:' export.json
//
// Export flags: one of -sqlite FILE, -postgres DSN or -mysql DSN; -layout
// (prisma, the default, or snake_case); -user ID (required); -o FILE or
// DIRECTORY (default: standard output; a directory gets the file name the
// endpoint would give; an existing file is kept unless -force; a FILE
// named .gz is written gzip-compressed and one named .zst
// zstd-compressed, at each compressor's default level, and a name that
// says another compression, such as .br, .xz or .zip, is refused);
// -section NAME=QUERY (repeatable) adds a section
// of the host's own, as the host's endpoint registers it with
// sqlstore.Section, so that the file matches the endpoint's. A file is written under a temporary name and
// renamed when complete, so a failed export leaves nothing behind.
// Progress goes to standard error every second for large accounts, and one
// audit event (JSON: who ran it, for which user, the outcome, the
// document's bytes, the file's encoding and file_bytes, records,
// duration_ms) is written to standard error, or appended to
// -audit FILE, which is opened before anything is exported. -help
// describes every flag.
//
// verify FILE reads an export back and checks its form, not its values:
// "well-formed export, format 1.0" means every key, type, timestamp form
// and order is the format's and the bytes are what the endpoint writes for
// that data. Otherwise it says exactly what is wrong: the first departure
// from the format, by its path in the document, or where the bytes first
// differ (a trailing newline, a compact file, tabs...), with a short
// quoted excerpt. verify -digest
// 'sha-256=:...:' FILE first checks the file against the Repr-Digest
// header of the response it came from. A gzip or zstd file (a coded
// download saved as received, or the command's -o file.json.gz or .zst),
// told by its magic bytes and not by its name, is checked as the
// document it decodes to, after the digest, which is of the compressed
// bytes; a compressed file that is cut short, has bytes after its end,
// or decodes to more than 4 GiB is refused.
//
// The exit status is 0 on success, 1 on failure and 2 for bad usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func run(args []string, stdout, stderr io.Writer) int {
	var err error
	if len(args) > 0 && args[0] == "verify" {
		err = verify(args[1:], stdout)
	} else {
		err = exportUser(args, stdout, stderr)
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		help(stdout)
		return 0
	}
	// One "export:" prefix, whatever the error's own says.
	fmt.Fprintln(stderr, "export:", strings.TrimPrefix(err.Error(), "export: "))
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprint(stderr, usage)
		fmt.Fprintln(stderr, "export -help describes every flag.")
		return 2
	}
	return 1
}

const usage = `usage: export (-sqlite FILE | -postgres DSN | -mysql DSN) [-layout prisma|snake_case] -user ID
              [-o FILE[.gz|.zst]|DIR [-force]] [-section NAME=QUERY]... [-audit FILE] [-exported-at TIME] [-progress-every D]
       export verify [-digest 'sha-256=:...:'] FILE
`

// help prints the usage and every flag with its meaning.
func help(w io.Writer) {
	fmt.Fprint(w, usage)
	fmt.Fprintln(w, "\nWrites one user's export, byte for byte the endpoint's document, and one audit event.")
	fmt.Fprintln(w, "Exit status: 0 on success, 1 on failure, 2 for bad usage.")
	fmt.Fprintln(w, "\nexport flags:")
	var f exportFlags
	printFlags(w, exportFlagSet(&f))
	fmt.Fprintln(w, "\nverify FILE checks a file's form (keys, types, timestamps, order, the endpoint's bytes), not its values; a gzip or zstd file (told by its magic bytes) is checked as the document it decodes to. Flags:")
	printFlags(w, verifyFlagSet(new(string)))
}

func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.SetOutput(w)
	fs.PrintDefaults()
}
