package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

const exportedAt = "2026-04-02T12:00:00Z"

// appDB makes an SQLite file with the application's tables holding the
// golden contract example's user, plus another user, and returns its path
// and the golden bytes.
func appDB(t *testing.T) (string, []byte) {
	t.Helper()
	golden, err := os.ReadFile("../../testdata/golden/contract-example.json")
	require.NoError(t, err)
	doc, err := export.Decode(bytes.NewReader(golden))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", "file:"+path)
	require.NoError(t, err)
	defer db.Close()
	ctx := context.Background()
	for _, stmt := range sqlfixture.AppSchema(sqlstore.SQLite, "") {
		_, err := db.ExecContext(ctx, stmt)
		require.NoError(t, err)
	}
	w := &sqlfixture.Writer{DB: db, Dialect: sqlstore.SQLite, Layout: sqlstore.PrismaLayout(), Times: sqlfixture.UnixMillis}
	w.Extra = map[string]map[string]any{"User": {"updatedAt": int64(0), "passwordHash": "SECRET-HASH"}}
	require.NoError(t, w.PutDocument(ctx, doc))
	require.NoError(t, w.PutUser(ctx, export.User{ID: "someone-else", Email: "else@example.com", Plan: export.Some("free"), Role: "user"}))
	return path, golden
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// auditLine decodes the one audit event in stderr.
func auditLine(t *testing.T, stderr string) map[string]any {
	t.Helper()
	var events []map[string]any
	for line := range strings.Lines(stderr) {
		if strings.HasPrefix(line, "{") {
			var ev map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &ev))
			events = append(events, ev)
		}
	}
	require.Len(t, events, 1, "one audit event:\n%s", stderr)
	return events[0]
}

// TestExportIsWhatTheEndpointServes: the command's file is byte for byte
// the endpoint's body for the same user, data and time, and verify
// accepts it.
func TestExportIsWhatTheEndpointServes(t *testing.T) {
	path, golden := appDB(t)
	out := filepath.Join(t.TempDir(), "export.json")
	code, stdout, stderr := runCmd("-sqlite", path, "-user", "user_abc123", "-o", out, "-exported-at", exportedAt)
	require.Equal(t, 0, code, stderr)
	require.Empty(t, stdout)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, string(golden), string(got))

	// The endpoint, on the same database.
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	store, err := sqlstore.New(db, sqlstore.SQLite)
	require.NoError(t, err)
	at, _ := time.Parse(time.RFC3339, exportedAt)
	h := export.NewHandler(export.NewExporter(store), func(*http.Request) (string, error) { return "user_abc123", nil },
		export.WithClock(func() time.Time { return at }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/export", nil))
	require.Equal(t, rec.Body.String(), string(got))

	ev := auditLine(t, stderr)
	require.Equal(t, "exported", ev["outcome"])
	require.Equal(t, "user_abc123", ev["user_id"])
	require.Equal(t, float64(len(golden)), ev["bytes"])
	require.Equal(t, float64(1), ev["agents"])
	require.Equal(t, out, ev["file"])
	require.NotEmpty(t, ev["operator"])
	require.Greater(t, ev["duration_ms"], float64(0), "the duration in milliseconds, the unit in its name")
	require.Less(t, ev["duration_ms"], float64(60000))
	require.NotContains(t, ev, "duration")
	require.NotContains(t, stderr, "my-agent", "the audit event never holds the document")
	require.NotContains(t, string(got), "SECRET")

	code, stdout, stderr = runCmd("verify", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, `well-formed export, format 1.0, of user "user_abc123"`)
	require.Contains(t, stdout, "not checked: that the values are the ones the database held")
	require.NotContains(t, stdout, "valid export", "verify cannot vouch for the values")
	require.Contains(t, stdout, "1 agents, 1 scheduled tasks, 1 workflows")
}

// TestAuditLogOpenedFirst: an audit log that cannot be opened stops the
// command before it exports anything.
func TestAuditLogOpenedFirst(t *testing.T) {
	path, _ := appDB(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.json")
	for _, audit := range []string{filepath.Join(dir, "missing", "audit.log"), dir} {
		code, stdout, stderr := runCmd("-sqlite", path, "-user", "user_abc123", "-o", out, "-audit", audit)
		require.Equal(t, 1, code, stderr)
		require.Empty(t, stdout)
		require.Contains(t, stderr, "-audit: cannot open the audit log, so nothing was exported")
		left, _ := os.ReadDir(dir)
		require.Empty(t, left, "no export without an audit record")
	}
	audit := filepath.Join(dir, "audit.log")
	code, _, stderr := runCmd("-sqlite", path, "-user", "user_abc123", "-o", out, "-audit", audit)
	require.Equal(t, 0, code, stderr)
	log, err := os.ReadFile(audit)
	require.NoError(t, err)
	require.Equal(t, "exported", auditLine(t, string(log))["outcome"])
	require.NotContains(t, stderr, `"outcome"`, "the event goes to the file, not stderr")
}

// TestOutputFile: an existing file is kept unless -force; a missing
// directory is named as such.
func TestOutputFile(t *testing.T) {
	path, golden := appDB(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.json")
	require.NoError(t, os.WriteFile(out, []byte("an earlier request's file"), 0o600))
	code, _, stderr := runCmd("-sqlite", path, "-user", "user_abc123", "-o", out, "-exported-at", exportedAt)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "export: -o: "+out+" is already a file; give -force to overwrite it")
	got, _ := os.ReadFile(out)
	require.Equal(t, "an earlier request's file", string(got))
	left, _ := os.ReadDir(dir)
	require.Len(t, left, 1, "no temporary file left")

	code, _, stderr = runCmd("-sqlite", path, "-user", "user_abc123", "-o", out, "-exported-at", exportedAt, "-force")
	require.Equal(t, 0, code, stderr)
	got, _ = os.ReadFile(out)
	require.Equal(t, string(golden), string(got))

	// Into a directory: the endpoint's name there is kept as well.
	code, _, stderr = runCmd("-sqlite", path, "-user", "user_abc123", "-o", dir, "-exported-at", exportedAt)
	require.Equal(t, 0, code, stderr)
	code, _, stderr = runCmd("-sqlite", path, "-user", "user_abc123", "-o", dir, "-exported-at", exportedAt)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "agentbot-export-user_abc-2026-04-02.json is already a file; give -force")

	missing := filepath.Join(dir, "requests", "2026", "out.json")
	code, _, stderr = runCmd("-sqlite", path, "-user", "user_abc123", "-o", missing)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "the directory "+filepath.Join(dir, "requests", "2026")+" does not exist")
	require.NotContains(t, stderr, ".partial")
}

// TestHelp: -help prints every flag with its meaning, and exits 0.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"-help", "-h"} {
		code, stdout, stderr := runCmd(arg)
		require.Equal(t, 0, code, stderr)
		var f exportFlags
		n := 0
		exportFlagSet(&f).VisitAll(func(fl *flag.Flag) {
			n++
			require.Regexp(t, `(?m)^  -`+fl.Name+`( |$)`, stdout, "flag -%s", fl.Name)
			require.Regexp(t, `\w{4,}`, fl.Usage, "flag -%s has a meaning", fl.Name)
		})
		require.Equal(t, 11, n, "a new flag? it is printed; update the count")
		require.Contains(t, stdout, "  -digest ")
	}
	code, _, _ := runCmd("verify", "-help")
	require.Equal(t, 0, code)
}

// TestVerifyDigest: verify -digest checks a file against the endpoint's
// Repr-Digest header, and names a file changed after download.
func TestVerifyDigest(t *testing.T) {
	path, golden := appDB(t)
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	store, err := sqlstore.New(db, sqlstore.SQLite)
	require.NoError(t, err)
	h := export.NewHandler(export.NewExporter(store), func(*http.Request) (string, error) { return "user_abc123", nil })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/export", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	digest := rec.Header().Get("Repr-Digest")
	require.NotEmpty(t, digest)

	file := filepath.Join(t.TempDir(), "download.json")
	require.NoError(t, os.WriteFile(file, rec.Body.Bytes(), 0o600))
	code, stdout, stderr := runCmd("verify", "-digest", digest, file)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "its SHA-256 matches the digest")
	code, _, stderr = runCmd("verify", "-digest", "sha-512=:AAAA:, "+digest, file)
	require.Equal(t, 0, code, "a dictionary with other algorithms: %s", stderr)

	// Changed after download, still well-formed: only the digest can tell.
	edited := bytes.Replace(rec.Body.Bytes(), []byte(`"my-agent"`), []byte(`"my-agenT"`), 1)
	require.NoError(t, os.WriteFile(file, edited, 0o600))
	code, _, stderr = runCmd("verify", file)
	require.Equal(t, 0, code, "without the digest, an edited file is well-formed: %s", stderr)
	code, stdout, stderr = runCmd("verify", "-digest", digest, file)
	require.Equal(t, 1, code, stdout)
	require.Contains(t, stderr, "does not match the digest: its SHA-256 is sha-256=:")
	require.Contains(t, stderr, "the digest says "+digest)

	// Another download's digest: the golden file's.
	require.NoError(t, os.WriteFile(file, golden, 0o600))
	code, _, _ = runCmd("verify", "-digest", digest, file)
	require.Equal(t, 1, code)

	for _, bad := range []string{"md5=:AAAA:", "sha-256=abc", "sha-256=:bm90IDMyIGJ5dGVz:"} {
		code, _, stderr = runCmd("verify", "-digest", bad, file)
		require.Equal(t, 2, code, bad)
		require.Contains(t, stderr, "-digest: ", bad)
	}
}

func TestExportToStdoutAndDirectory(t *testing.T) {
	path, golden := appDB(t)
	code, stdout, stderr := runCmd("-sqlite", path, "-user", "user_abc123", "-exported-at", exportedAt)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, string(golden), stdout)

	dir := t.TempDir()
	code, _, stderr = runCmd("-sqlite", path, "-user", "user_abc123", "-o", dir, "-exported-at", exportedAt)
	require.Equal(t, 0, code, stderr)
	got, err := os.ReadFile(filepath.Join(dir, "agentbot-export-user_abc-2026-04-02.json"))
	require.NoError(t, err)
	require.Equal(t, string(golden), string(got))
	left, _ := os.ReadDir(dir)
	require.Len(t, left, 1, "only the export: no temporary file")
}

// TestExportFailures: each mistake gets a message that says what to fix,
// the right exit status, an audit event when an export was attempted,
// and no output file.
func TestExportFailures(t *testing.T) {
	path, _ := appDB(t)
	empty := filepath.Join(t.TempDir(), "empty.db")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	cases := []struct {
		name  string
		args  []string
		code  int
		msg   string
		audit bool
	}{
		{"missing user", []string{"-sqlite", path, "-user", "nobody"}, 1, `no user with ID "nobody" in the database`, true},
		{"missing file", []string{"-sqlite", filepath.Join(t.TempDir(), "nope.db"), "-user", "u"}, 1, "SQLite file: stat", true},
		{"missing tables", []string{"-sqlite", empty, "-user", "u"}, 1, "does not have the prisma layout's tables and columns", true},
		{"wrong layout", []string{"-sqlite", path, "-layout", "snake_case", "-user", "u"}, 1, "does not have the snake_case layout's tables", true},
		{"unreachable PostgreSQL", []string{"-postgres", "postgres://nobody@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "-user", "u"}, 1, "cannot connect to PostgreSQL", true},
		{"bad MySQL DSN", []string{"-mysql", "not a dsn", "-user", "u"}, 1, "MySQL: bad DSN", true},
		{"no database", []string{"-user", "u"}, 2, "give exactly one of -sqlite, -postgres and -mysql", false},
		{"two databases", []string{"-sqlite", path, "-mysql", "x", "-user", "u"}, 2, "give exactly one", false},
		{"no user", []string{"-sqlite", path}, 2, "-user is required", false},
		{"unknown layout", []string{"-sqlite", path, "-user", "u", "-layout", "nope"}, 2, "nope", false},
		{"unknown flag", []string{"-sqlite", path, "-user", "u", "-x"}, 2, "flag provided but not defined", false},
		{"verify without a file", []string{"verify"}, 2, "verify takes one file", false},
		{"section without a query", []string{"-sqlite", path, "-user", "u", "-section", "notes"}, 2, "want NAME=QUERY", false},
		{"section with a built-in name", []string{"-sqlite", path, "-user", "user_abc123", "-section", "agents=SELECT 1"}, 2, `"agents" is a key of the format`, true},
		{"section that does not bind the user", []string{"-sqlite", path, "-user", "user_abc123", "-section", "notes=SELECT id, userId FROM Agent"}, 1, "takes none, so it would export every user's rows", true},
		{"section with bad SQL", []string{"-sqlite", path, "-user", "user_abc123", "-section", "notes=SELECT nothing FROM nowhere WHERE x = ?"}, 1, "could not read notes", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append(c.args, "-o", filepath.Join(dir, "out.json"))
			if c.args[0] == "verify" {
				args = c.args
			}
			code, stdout, stderr := runCmd(args...)
			require.Equal(t, c.code, code, stderr)
			require.Empty(t, stdout)
			require.Contains(t, stderr, c.msg)
			msg := strings.SplitN(stderr, "\n", 2)[0]
			if strings.HasPrefix(msg, "{") { // the audit event first
				msg = strings.SplitN(stderr, "\n", 3)[1]
			}
			require.Equal(t, 1, strings.Count(msg, "export:"), "one export: prefix: %s", msg)
			if c.audit {
				ev := auditLine(t, stderr)
				require.Equal(t, "failed", ev["outcome"])
				require.Contains(t, ev["error"], c.msg)
			}
			left, _ := os.ReadDir(dir)
			require.Empty(t, left, "a failed export leaves no file")
		})
	}
}

// TestVerifySaysWhatIsWrong: verify names the first problem of a broken
// file precisely.
func TestVerifySaysWhatIsWrong(t *testing.T) {
	golden, err := os.ReadFile("../../testdata/golden/contract-example.json")
	require.NoError(t, err)
	g := string(golden)
	cases := map[string]struct{ content, msg string }{
		"bad timestamp": {strings.Replace(g, `"createdAt": "2026-03-01T00:00:00.000Z"`, `"createdAt": "2026-03-01T00:00:00Z"`, 1),
			`agents[0].createdAt: "2026-03-01T00:00:00Z" is not a timestamp`},
		"a secret key": {strings.Replace(g, `"model": "gpt-4o",`, `"model": "gpt-4o", "apiKey": "sk",`, 1), "apiKey"},
		"truncated":    {g[:len(g)/2], "not a well-formed export"},
		"reindented": {strings.ReplaceAll(g, "  ", "\t"),
			`holds well-formed data, but not in the bytes the endpoint writes: the file is indented with tabs; the endpoint indents by two spaces: at line 2, column 1 the file has "\t\"exportedAt\": \"2026-04-"... where the endpoint writes "  \"exportedAt\": \"2026-04"...`},
		"trailing newline":                      {g + "\n", `not in the bytes the endpoint writes: it ends with "\n" after the document's closing "}", and the endpoint writes nothing after it`},
		"trailing newline after added sections": {strings.TrimSuffix(g, "\n}") + ",\n  \"notes\": []\n}\r\n", `it ends with "\r\n" after the document's closing "}"`},
		"compact":                               {compact(t, g), `the file is compact JSON on one line; the endpoint writes it pretty-printed, one key per line, indented by two spaces (as JSON.stringify(doc, null, 2)): at line 1, column 2 the file has "{\"exportedAt\":\"2026-04-02"... where the endpoint writes "{\n"`},
		"CRLF":                                  {strings.ReplaceAll(g, "\n", "\r\n"), `Windows line ends (CRLF); the endpoint writes LF only: at line 1, column 2 the file has "{\r\n" where the endpoint writes "{\n"`},
		"no space after a colon": {strings.Replace(g, `"name": "my-agent"`, `"name":"my-agent"`, 1),
			`at line 16, column 14 the file has "      \"name\":\"my-agent\",\n" where the endpoint writes "      \"name\": \"my-agent\",\n"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "x.json")
			require.NoError(t, os.WriteFile(file, []byte(c.content), 0o600))
			code, stdout, stderr := runCmd("verify", file)
			require.Equal(t, 1, code, stdout)
			require.Contains(t, stderr, c.msg)
			require.Less(t, len(stderr), 500, "a short message, not the document: %s", stderr)
		})
	}
	withExtra := strings.TrimSuffix(g, "\n}") + ",\n  \"notifications\": [\n    {\n      \"id\": \"n1\"\n    }\n  ]\n}"
	file := filepath.Join(t.TempDir(), "extra.json")
	require.NoError(t, os.WriteFile(file, []byte(withExtra), 0o600))
	code, stdout, stderr := runCmd("verify", file)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "and sections added by the host")
}

// compact is doc as one line of JSON, as json.Compact writes it.
func compact(t *testing.T, doc string) string {
	var b bytes.Buffer
	require.NoError(t, json.Compact(&b, []byte(doc)))
	return b.String()
}

// TestProgress: a large account's export reports progress on stderr.
func TestProgress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.db")
	db, err := sql.Open("sqlite", "file:"+path)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, sqlstore.CreateTables(ctx, db, sqlstore.SQLite, sqlstore.PrismaLayout()))
	w := &sqlfixture.Writer{DB: db, Dialect: sqlstore.SQLite, Layout: sqlstore.PrismaLayout(), Times: sqlfixture.ISOText}
	require.NoError(t, w.PutUser(ctx, export.User{ID: "big", Email: "b@example.com", Role: "user"}))
	tx, err := db.Begin()
	require.NoError(t, err)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20000 {
		_, err := tx.Exec("INSERT INTO `Agent` (`id`, `userId`, `name`, `model`, `status`, `createdAt`, `updatedAt`) VALUES (?, 'big', 'n', 'm', 's', ?, ?)",
			fmt.Sprintf("a%06d", i), at.Format(time.RFC3339), at.Format(time.RFC3339))
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit())
	db.Close()
	code, _, stderr := runCmd("-sqlite", path, "-user", "big", "-o", filepath.Join(t.TempDir(), "x.json"), "-progress-every", "1ms")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "progress: ")
	require.Contains(t, stderr, "MB written in")
	require.Equal(t, float64(20000), auditLine(t, stderr)["agents"])
}

// TestExportWithAddedSection: -section adds a section of the host's own,
// as its endpoint does, and verify accepts the file.
func TestExportWithAddedSection(t *testing.T) {
	path, golden := appDB(t)
	db, err := sql.Open("sqlite", "file:"+path)
	require.NoError(t, err)
	_, err = db.Exec(`CREATE TABLE Notification (id TEXT PRIMARY KEY, userId TEXT NOT NULL, title TEXT NOT NULL)`)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO Notification VALUES ('n1', 'user_abc123', 'Welcome'), ('n2', 'someone-else', 'NOT YOURS')`)
	require.NoError(t, err)
	db.Close()

	out := filepath.Join(t.TempDir(), "export.json")
	code, _, stderr := runCmd("-sqlite", path, "-user", "user_abc123", "-o", out, "-exported-at", exportedAt,
		"-section", "notifications=SELECT id, title FROM Notification WHERE userId = ? ORDER BY id")
	require.Equal(t, 0, code, stderr)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	want := strings.TrimSuffix(string(golden), "\n}") + ",\n  \"notifications\": [\n    {\n      \"id\": \"n1\",\n      \"title\": \"Welcome\"\n    }\n  ]\n}"
	require.Equal(t, want, string(got))
	code, stdout, stderr := runCmd("verify", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "and sections added by the host")
}

// TestExportFromServers runs the command on PostgreSQL and MySQL/MariaDB
// when their DSNs are set (as .ci/run sets them), in a schema or database
// of the test's own with the application's tables: the file is the golden
// document, byte for byte.
func TestExportFromServers(t *testing.T) {
	golden, err := os.ReadFile("../../testdata/golden/contract-example.json")
	require.NoError(t, err)
	doc, err := export.Decode(bytes.NewReader(golden))
	require.NoError(t, err)
	for _, c := range []struct {
		name, env, driver, flag string
		dialect                 sqlstore.Dialect
	}{
		{"postgres", "EXPORT_TEST_POSTGRES_DSN", "pgx", "-postgres", sqlstore.Postgres},
		{"mysql", "EXPORT_TEST_MYSQL_DSN", "mysql", "-mysql", sqlstore.MySQL},
	} {
		t.Run(c.name, func(t *testing.T) {
			dsn := os.Getenv(c.env)
			if dsn == "" {
				t.Skipf("skipped: set %s to run the command on that server; .ci/run does", c.env)
			}
			db, err := sql.Open(c.driver, dsn)
			require.NoError(t, err)
			defer db.Close()
			ctx := context.Background()
			name := fmt.Sprintf("export_cmd_%d", time.Now().UnixNano())
			create, drop, quote := "CREATE SCHEMA ", "DROP SCHEMA %s CASCADE", `"`
			if c.dialect == sqlstore.MySQL {
				create, drop, quote = "CREATE DATABASE ", "DROP DATABASE %s", "`"
			}
			_, err = db.ExecContext(ctx, create+name)
			require.NoError(t, err)
			defer db.ExecContext(ctx, fmt.Sprintf(drop, name))
			for _, stmt := range sqlfixture.AppSchema(c.dialect, quote+name+quote+".") {
				_, err := db.ExecContext(ctx, stmt)
				require.NoError(t, err, stmt)
			}
			l := sqlstore.PrismaLayout()
			for _, tb := range []*string{&l.User.Table, &l.Agent.Table, &l.ScheduledTask.Table, &l.Workflow.Table} {
				*tb = name + "." + *tb
			}
			w := &sqlfixture.Writer{DB: db, Dialect: c.dialect, Layout: l, Times: sqlfixture.ISOText}
			w.Extra = map[string]map[string]any{l.User.Table: {"updatedAt": w.Time(time.Now())}}
			require.NoError(t, w.PutDocument(ctx, doc))

			// The command sees the tables under their plain names.
			target := dsn
			if c.dialect == sqlstore.Postgres {
				sep := "?"
				if strings.Contains(dsn, "?") {
					sep = "&"
				}
				target += sep + "search_path=" + name
			} else {
				cfg, err := mysql.ParseDSN(dsn)
				require.NoError(t, err)
				cfg.DBName = name
				target = cfg.FormatDSN()
			}
			out := filepath.Join(t.TempDir(), "export.json")
			code, _, stderr := runCmd(c.flag, target, "-user", doc.User.ID, "-o", out, "-exported-at", exportedAt)
			require.Equal(t, 0, code, stderr)
			got, err := os.ReadFile(out)
			require.NoError(t, err)
			require.Equal(t, string(golden), string(got))
			code, _, stderr = runCmd("verify", out)
			require.Equal(t, 0, code, stderr)
		})
	}
}

// TestVerifyCompressedDownload: a gzip- or zstd-coded download saved as
// received is checked against its Repr-Digest (of the compressed bytes)
// and then as the document it decodes to; a cut or padded file is
// refused.
func TestVerifyCompressedDownload(t *testing.T) {
	path, _ := appDB(t)
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	store, err := sqlstore.New(db, sqlstore.SQLite)
	require.NoError(t, err)
	h := export.NewHandler(export.NewExporter(store), func(*http.Request) (string, error) { return "user_abc123", nil },
		export.WithEncoder("zstd", func(w io.Writer) (io.WriteCloser, error) {
			return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
		}))
	for _, c := range []struct{ coding, ext string }{{"gzip", ".gz"}, {"zstd", ".zst"}} {
		t.Run(c.coding, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/api/export", nil)
			req.Header.Set("Accept-Encoding", c.coding)
			h.ServeHTTP(rec, req)
			require.Equal(t, http.StatusOK, rec.Code)
			require.Equal(t, c.coding, rec.Header().Get("Content-Encoding"))
			digest := rec.Header().Get("Repr-Digest")

			file := filepath.Join(t.TempDir(), "download.json"+c.ext)
			require.NoError(t, os.WriteFile(file, rec.Body.Bytes(), 0o600))
			code, stdout, stderr := runCmd("verify", "-digest", digest, file)
			require.Equal(t, 0, code, stderr)
			require.Contains(t, stdout, "its SHA-256 matches the digest")
			require.Contains(t, stdout, c.coding+", ")
			require.Contains(t, stdout, "well-formed export, format 1.0")
			require.NotContains(t, stdout, "note:")

			body := rec.Body.Bytes()
			for name, bad := range map[string][]byte{
				"cut":    body[:len(body)-4],
				"padded": append(slices.Clone(body), 'x'),
			} {
				require.NoError(t, os.WriteFile(file, bad, 0o600))
				code, _, stderr = runCmd("verify", file)
				require.Equal(t, 1, code, name)
				require.Contains(t, stderr, "starts as "+c.coding+" but does not decode", name)
			}
		})
	}
}

// TestCompressedOutput: -o file.json.gz and .json.zst write the document
// compressed, under a temporary name until complete as a plain file is;
// each decodes (with the standard gzip reader and a zstd reader, and
// through verify) to the plain export's bytes.
func TestCompressedOutput(t *testing.T) {
	path, golden := appDB(t)
	dir := t.TempDir()
	plain := filepath.Join(dir, "export.json")
	code, _, stderr := runCmd("-sqlite", path, "-user", "user_abc123", "-o", plain, "-exported-at", exportedAt)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "identity", auditLine(t, stderr)["encoding"])
	want, err := os.ReadFile(plain)
	require.NoError(t, err)
	require.Equal(t, string(golden), string(want))

	for _, c := range []struct {
		name, coding string
		magic        []byte
		decode       func([]byte) ([]byte, error)
	}{
		{"export.json.gz", "gzip", []byte{0x1f, 0x8b}, func(b []byte) ([]byte, error) {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(zr)
		}},
		{"export.json.zst", "zstd", []byte{0x28, 0xb5, 0x2f, 0xfd}, func(b []byte) ([]byte, error) {
			zr, err := zstd.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			defer zr.Close()
			return io.ReadAll(zr)
		}},
		{"EXPORT.JSON.GZ", "gzip", []byte{0x1f, 0x8b}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, c.name)
			code, stdout, stderr := runCmd("-sqlite", path, "-user", "user_abc123", "-o", out, "-exported-at", exportedAt)
			require.Equal(t, 0, code, stderr)
			require.Empty(t, stdout)
			got, err := os.ReadFile(out)
			require.NoError(t, err)
			require.True(t, bytes.HasPrefix(got, c.magic), "%s starts with % x", c.name, got[:4])
			left, _ := os.ReadDir(dir)
			require.Len(t, left, 1, "only the file: no temporary one")
			if c.decode != nil {
				decoded, err := c.decode(got)
				require.NoError(t, err)
				require.Equal(t, string(want), string(decoded), "decoded, the plain export's bytes")
			}
			ev := auditLine(t, stderr)
			require.Equal(t, c.coding, ev["encoding"])
			require.Equal(t, float64(len(want)), ev["bytes"], "bytes: the document's")
			require.Equal(t, float64(len(got)), ev["file_bytes"], "file_bytes: the file's")
			require.Contains(t, stderr, fmt.Sprintf("wrote %s: %d bytes (%s of the %d-byte document)", out, len(got), c.coding, len(want)))

			code, stdout, stderr = runCmd("verify", out)
			require.Equal(t, 0, code, stderr)
			require.Contains(t, stdout, fmt.Sprintf("%s: %s, %d bytes decoded", out, c.coding, len(want)))
			require.Contains(t, stdout, `well-formed export, format 1.0, of user "user_abc123"`)
			require.NotContains(t, stdout, "note:")

			// The decoded document is what verify checked: the plain file's.
			b, err := decodeFile(out, got, maxDecoded, io.Discard)
			require.NoError(t, err)
			require.Equal(t, string(want), string(b))
		})
	}
}

// TestCompressedOutputRefused: a name that says a compression the command
// does not write is refused before anything is read or written.
func TestCompressedOutputRefused(t *testing.T) {
	path, _ := appDB(t)
	for _, name := range []string{"export.json.br", "export.json.xz", "export.zip", "export.json.ZSTD", "export.json.bz2"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			code, stdout, stderr := runCmd("-sqlite", path, "-user", "user_abc123", "-o", filepath.Join(dir, name))
			require.Equal(t, 2, code, stderr)
			require.Empty(t, stdout)
			require.Contains(t, stderr, "names a compression the command does not write; it writes gzip for .gz and zstd for .zst")
			require.NotContains(t, stderr, `"outcome"`, "refused before an export was attempted")
			left, _ := os.ReadDir(dir)
			require.Empty(t, left)
		})
	}
	// A compressed export that fails leaves nothing, as a plain one.
	for _, name := range []string{"x.json.gz", "x.json.zst"} {
		dir := t.TempDir()
		code, _, stderr := runCmd("-sqlite", path, "-user", "user_abc123", "-o", filepath.Join(dir, name),
			"-section", "notes=SELECT nothing FROM nowhere WHERE x = ?")
		require.Equal(t, 1, code, stderr)
		require.Contains(t, stderr, "could not read notes")
		left, _ := os.ReadDir(dir)
		require.Empty(t, left, "%s: a failed export leaves no file", name)
	}
	// Other names are plain JSON, as before.
	out := filepath.Join(t.TempDir(), "export.txt")
	code, _, stderr := runCmd("-sqlite", path, "-user", "user_abc123", "-o", out)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "identity", auditLine(t, stderr)["encoding"])
}

// TestVerifyCompressedFiles: verify tells a file's kind by its magic bytes,
// refuses a damaged compressed file with a message saying how, and notes
// a name that disagrees with the content.
func TestVerifyCompressedFiles(t *testing.T) {
	golden, err := os.ReadFile("../../testdata/golden/contract-example.json")
	require.NoError(t, err)
	gz := gzipBytes(t, golden)
	zs := zstdBytes(t, golden)
	skippable := []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'p', 'a', 'd', '!'}
	flipped := slices.Clone(zs)
	flipped[len(flipped)/2] ^= 0xff
	wrongMagic := slices.Clone(zs)
	wrongMagic[3] = 0xfe
	cases := []struct {
		name    string
		file    string
		content []byte
		code    int
		says    string // on stderr when code != 0, else on stdout
	}{
		{"zstd", "x.json.zst", zs, 0, "x.json.zst: zstd, "},
		{"zstd cut in its checksum", "x.json.zst", zs[:len(zs)-1], 1, "starts as zstd but does not decode: the zstd frame is cut short"},
		{"zstd cut in half", "x.json.zst", zs[:len(zs)/2], 1, "starts as zstd but does not decode: the zstd frame is cut short"},
		{"zstd header only", "x.json.zst", zs[:5], 1, "starts as zstd but does not decode: the zstd frame is cut short"},
		{"zstd magic only", "x.json.zst", zs[:4], 1, "starts as zstd but does not decode: the zstd frame is cut short"},
		{"zstd padded", "x.json.zst", append(slices.Clone(zs), 'x'), 1, "starts as zstd but does not decode: 1 bytes follow the zstd frame"},
		{"zstd padded with zeros", "x.json.zst", append(slices.Clone(zs), make([]byte, 512)...), 1, "512 bytes follow the zstd frame"},
		{"zstd and a skippable frame", "x.json.zst", append(slices.Clone(zs), skippable...), 1, "12 bytes follow the zstd frame"},
		{"zstd twice", "x.json.zst", append(slices.Clone(zs), zs...), 1, fmt.Sprintf("%d bytes follow the zstd frame", len(zs))},
		{"zstd damaged", "x.json.zst", flipped, 1, "starts as zstd but does not decode"},
		{"zstd wrong magic", "x.json.zst", wrongMagic, 1, "x.json.zst is named as zstd, but it starts with neither zstd's magic bytes (28 b5 2f fd) nor an export's \"{\": it starts with 28 b5 2f fe"},
		{"gzip wrong magic", "x.json.gz", append([]byte{0x1f, 0x8c}, gz[2:]...), 1, "x.json.gz is named as gzip, but it starts with neither gzip's magic bytes (1f 8b)"},
		{"gzip cut", "x.json.gz", gz[:len(gz)/2], 1, "starts as gzip but does not decode"},
		{"gzip padded", "x.json.gz", append(slices.Clone(gz), 0), 1, "1 bytes follow the gzip stream"},
		{"a .gz that is plain", "x.json.gz", golden, 0, "x.json.gz: note: its name says gzip, but it holds plain JSON (saved decoded?); checked as what it holds"},
		{"a .zst that is plain", "x.json.zst", golden, 0, "its name says zstd, but it holds plain JSON"},
		{"a .json that is zstd", "x.json", zs, 0, "x.json: note: its name says plain JSON, but it holds zstd; checked as what it holds"},
		{"a .zst that is gzip", "x.json.zst", gz, 0, "its name says zstd, but it holds gzip"},
		{"a .gz that is plain and broken", "x.json.gz", golden[:100], 1, "is not a well-formed export"},
		{"xz", "x.json.xz", append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, zs...), 1, "x.json.xz is compressed with xz; verify reads plain, gzip and zstd files: decompress it first"},
		{"bzip2", "x.json", []byte("BZh91AY&SY"), 1, "is compressed with bzip2"},
		{"empty", "x.json.zst", nil, 1, "x.json.zst is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), c.file)
			require.NoError(t, os.WriteFile(file, c.content, 0o600))
			code, stdout, stderr := runCmd("verify", file)
			require.Equal(t, c.code, code, "stdout: %s\nstderr: %s", stdout, stderr)
			if c.code == 0 {
				require.Contains(t, stdout, c.says)
				require.Contains(t, stdout, "well-formed export, format 1.0")
				return
			}
			require.NotContains(t, stdout, "well-formed")
			require.Contains(t, stderr, c.says)
			require.Less(t, len(stderr), 500, "a short message: %s", stderr)
		})
	}
}

// TestEveryCutIsRefused: a compressed file cut at any byte, a block's
// boundary included, is refused, never taken for a shorter document.
func TestEveryCutIsRefused(t *testing.T) {
	// Letters that compress poorly, in a 1 KiB window: a frame of many
	// blocks.
	doc := make([]byte, 8<<10)
	for i := range doc {
		doc[i] = 'a' + byte(i*7919%26)
	}
	gz := gzipBytes(t, doc)
	zs := zstdBytes(t, doc, zstd.WithWindowSize(1<<10))
	var h zstd.Header
	require.NoError(t, h.Decode(zs))
	require.False(t, h.FirstBlock.Last, "more than one block")
	for n := len(zstdMagic); n < len(zs); n++ {
		_, err := decodeFile("x.zst", zs[:n], maxDecoded, io.Discard)
		require.ErrorContains(t, err, "x.zst starts as zstd but does not decode: the zstd frame is cut short", "cut to %d of %d bytes", n, len(zs))
	}
	for n := len(gzipMagic); n < len(gz); n++ {
		_, err := decodeFile("x.gz", gz[:n], maxDecoded, io.Discard)
		require.ErrorContains(t, err, "x.gz starts as gzip but does not decode", "cut to %d of %d bytes", n, len(gz))
	}
	b, err := decodeFile("x.zst", zs, maxDecoded, io.Discard)
	require.NoError(t, err)
	require.Equal(t, doc, b)
}

// TestDecodeLimit: a compressed file that decodes past the limit is
// refused, not read to its end (4 GiB in the command; less here).
func TestDecodeLimit(t *testing.T) {
	big := bytes.Repeat([]byte("{"), 1<<20)
	for _, c := range []struct {
		coding string
		b      []byte
	}{{"gzip", gzipBytes(t, big)}, {"zstd", zstdBytes(t, big)}} {
		t.Run(c.coding, func(t *testing.T) {
			require.Less(t, len(c.b), 1<<16, "the file is small; what it decodes to is not")
			_, err := decodeFile("bomb", c.b, 1<<19, io.Discard)
			require.ErrorContains(t, err, "bomb starts as "+c.coding+" but does not decode: it decodes to more than 524288 bytes")
			b, err := decodeFile("bomb", c.b, 1<<20, io.Discard)
			require.NoError(t, err, "exactly the limit is allowed")
			require.Len(t, b, 1<<20)
		})
	}
	require.EqualError(t, tooLarge(maxDecoded), "it decodes to more than 4 GiB")
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// zstdBytes is b as one zstd frame with a checksum.
func zstdBytes(t *testing.T, b []byte, opts ...zstd.EOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, append([]zstd.EOption{zstd.WithEncoderConcurrency(1)}, opts...)...)
	require.NoError(t, err)
	_, err = zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}
