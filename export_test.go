package export_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/memstore"
)

// goldenInput is the shape of testdata/golden/*.input.json: the data of a
// document with timestamps as RFC 3339 text at any precision and zone.
type goldenInput struct {
	ExportedAt time.Time `json:"exportedAt"`
	User       struct {
		ID              string            `json:"id"`
		Email           string            `json:"email"`
		Name            export.NullString `json:"name"`
		Plan            export.NullString `json:"plan"`
		Role            string            `json:"role"`
		ReferralCode    export.NullString `json:"referralCode"`
		ReferralCredits int64             `json:"referralCredits"`
	} `json:"user"`
	Agents []struct {
		ID, Name, Model, Status string
		CreatedAt, UpdatedAt    time.Time
	} `json:"agents"`
	ScheduledTasks []struct {
		ID, Name, CronSchedule string
		Enabled                bool
		CreatedAt              time.Time
	} `json:"scheduledTasks"`
	Workflows []struct {
		ID, Name  string
		Enabled   bool
		CreatedAt time.Time
	} `json:"workflows"`
}

func (in *goldenInput) document() *export.Document {
	d := &export.Document{ExportedAt: in.ExportedAt, Version: export.Version, User: export.User(in.User)}
	d.Agents, d.ScheduledTasks, d.Workflows = []export.Agent{}, []export.ScheduledTask{}, []export.Workflow{}
	for _, a := range in.Agents {
		d.Agents = append(d.Agents, export.Agent(a))
	}
	for _, t := range in.ScheduledTasks {
		d.ScheduledTasks = append(d.ScheduledTasks, export.ScheduledTask(t))
	}
	for _, w := range in.Workflows {
		d.Workflows = append(d.Workflows, export.Workflow(w))
	}
	return d
}

// goldenCases returns the documents of testdata/golden by case name.
func goldenCases(t testing.TB) map[string]*export.Document {
	t.Helper()
	files, err := filepath.Glob("testdata/golden/*.input.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	cases := map[string]*export.Document{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var in goldenInput
		require.NoError(t, json.Unmarshal(raw, &in), f)
		cases[strings.TrimSuffix(filepath.Base(f), ".input.json")] = in.document()
	}
	return cases
}

// storeOf puts a document's data into a fresh memstore.
func storeOf(t testing.TB, d *export.Document) *memstore.Store {
	t.Helper()
	s := memstore.New()
	s.PutUser(d.User)
	for _, a := range d.Agents {
		require.NoError(t, s.PutAgent(d.User.ID, a))
	}
	for _, x := range d.ScheduledTasks {
		require.NoError(t, s.PutScheduledTask(d.User.ID, x))
	}
	for _, w := range d.Workflows {
		require.NoError(t, s.PutWorkflow(d.User.ID, w))
	}
	return s
}

// TestGolden checks the encoder byte for byte against documents printed by
// JavaScript's JSON.stringify(doc, null, 2), both from a Document in
// memory and streamed from a store.
func TestGolden(t *testing.T) {
	for name, doc := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata/golden", name+".json"))
			require.NoError(t, err)

			if got := doc.Bytes(); !bytes.Equal(got, want) {
				t.Fatalf("Document.Bytes differs from the golden file:\n%s", cmp.Diff(string(want), string(got)))
			}

			var buf bytes.Buffer
			res, err := export.NewExporter(storeOf(t, doc)).Export(context.Background(), &buf, export.Request{UserID: doc.User.ID, ExportedAt: doc.ExportedAt})
			require.NoError(t, err)
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("streamed export differs from the golden file:\n%s", cmp.Diff(string(want), buf.String()))
			}
			require.Equal(t, export.Result{Bytes: int64(len(want)), Agents: len(doc.Agents), ScheduledTasks: len(doc.ScheduledTasks), Workflows: len(doc.Workflows)}, res)

			// What we write, we read back: Decode returns the same data
			// at the format's millisecond precision.
			back, err := export.Decode(bytes.NewReader(want))
			require.NoError(t, err)
			if diff := cmp.Diff(atMillis(doc), back); diff != "" {
				t.Fatalf("Decode(golden) differs (-want +got):\n%s", diff)
			}
		})
	}
}

func atMillis(d *export.Document) *export.Document {
	ms := func(t time.Time) time.Time {
		t = t.UTC()
		return t.Add(-time.Duration(t.Nanosecond() % 1e6))
	}
	c := *d
	c.ExportedAt = ms(c.ExportedAt)
	c.Agents = append([]export.Agent{}, d.Agents...)
	for i := range c.Agents {
		c.Agents[i].CreatedAt, c.Agents[i].UpdatedAt = ms(c.Agents[i].CreatedAt), ms(c.Agents[i].UpdatedAt)
	}
	c.ScheduledTasks = append([]export.ScheduledTask{}, d.ScheduledTasks...)
	for i := range c.ScheduledTasks {
		c.ScheduledTasks[i].CreatedAt = ms(c.ScheduledTasks[i].CreatedAt)
	}
	c.Workflows = append([]export.Workflow{}, d.Workflows...)
	for i := range c.Workflows {
		c.Workflows[i].CreatedAt = ms(c.Workflows[i].CreatedAt)
	}
	return &c
}

// TestGoldenMatchesNode regenerates the golden files with Node.js into a
// temporary directory and checks that the committed ones are exactly what
// JSON.stringify prints today, so nobody can "fix" a golden file by hand.
func TestGoldenMatchesNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the golden files cannot be regenerated here")
	}
	out := t.TempDir()
	cmd := exec.Command(node, "testdata/golden/generate.mjs", out)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", msg)
	fresh, _ := filepath.Glob(filepath.Join(out, "*.json"))
	require.NotEmpty(t, fresh)
	for _, f := range fresh {
		got, _ := os.ReadFile(f)
		want, err := os.ReadFile(filepath.Join("testdata/golden", filepath.Base(f)))
		require.NoError(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: committed golden file differs from what node prints now; rerun node testdata/golden/generate.mjs", filepath.Base(f))
		}
	}
}

func TestFormatTime(t *testing.T) {
	cases := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), "2026-03-01T00:00:00.000Z"},
		{time.Date(2026, 3, 1, 0, 0, 0, 999999999, time.UTC), "2026-03-01T00:00:00.999Z"}, // truncated, not rounded
		{time.Date(2026, 3, 1, 1, 30, 0, 1500000, time.FixedZone("", 5400)), "2026-03-01T00:00:00.001Z"},
		{time.Date(2025, 12, 31, 23, 0, 0, 0, time.FixedZone("", -3600)), "2026-01-01T00:00:00.000Z"},
		{time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), "1969-12-31T23:59:59.999Z"},
		{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), "0000-01-01T00:00:00.000Z"},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "0001-01-01T00:00:00.000Z"},
		// JavaScript's extended years (checked with node: new Date(...).toISOString()).
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "+010000-01-01T00:00:00.000Z"},
		{time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), "-000001-01-01T00:00:00.000Z"},
	}
	for _, c := range cases {
		if got := export.FormatTime(c.in); got != c.want {
			t.Errorf("FormatTime(%v) = %s, want %s", c.in, got, c.want)
		}
		back, err := export.ParseTime(c.want)
		if err != nil {
			t.Errorf("ParseTime(%s): %v", c.want, err)
		} else if !back.Equal(c.in.Truncate(0).Add(-time.Duration(c.in.Nanosecond() % 1e6))) {
			t.Errorf("ParseTime(%s) = %v", c.want, back)
		}
	}
}

func TestParseTimeRejects(t *testing.T) {
	for _, s := range []string{
		"", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00.00Z", "2026-03-01T00:00:00.0000Z",
		"2026-03-01T00:00:00.000+00:00", "2026-03-01 00:00:00.000Z", "2026-02-30T00:00:00.000Z",
		"2026-13-01T00:00:00.000Z", "2026-03-01T24:00:00.000Z", "2026-03-01T00:60:00.000Z",
		"2026-03-01T00:00:60.000Z", "2026-03-01t00:00:00.000z", "+002026-03-01T00:00:00.000Z",
		"-000000-01-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z ", "２026-03-01T00:00:00.000Z",
	} {
		if _, err := export.ParseTime(s); err == nil {
			t.Errorf("ParseTime(%q) accepted a timestamp not in the contract's form", s)
		}
	}
}

// TestStringEscaping compares the string writer with encoding/json's
// reading of it and with what JSON.stringify writes, case by case.
func TestStringEscaping(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `""`},
		{"<>&", `"<>&"`},
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"\x7f", "\"\x7f\""},
		{"\x00", `"\u0000"`},
		{"\x1b[31m", `"\u001b[31m"`},
		{"a\"b\\c/d", `"a\"b\\c/d"`},
		{"\b\f\n\r\t\v", `"\b\f\n\r\t\u000b"`},
		{"\xff", "\"\uFFFD\""},                     // invalid UTF-8: one U+FFFD per byte
		{"a\xc3(b", "\"a\uFFFD(b\""},               // truncated sequence
		{"\xed\xa0\x80", "\"\uFFFD\uFFFD\uFFFD\""}, // an encoded surrogate is invalid UTF-8
		{"🎉", `"🎉"`},
	}
	for _, c := range cases {
		d := &export.Document{User: export.User{ID: c.in}}
		got := string(d.Bytes())
		line := strings.SplitN(got, "\n", 6)[4] // `    "id": <string>,`
		if want := `    "id": ` + c.want + ","; line != want {
			t.Errorf("%q: wrote %s, want %s", c.in, line, want)
		}
	}
}

func TestNullStringJSON(t *testing.T) {
	for _, n := range []export.NullString{{}, export.Some(""), export.Some("x<\"")} {
		b, err := json.Marshal(n)
		require.NoError(t, err)
		var back export.NullString
		require.NoError(t, json.Unmarshal(b, &back))
		require.Equal(t, n, back, "%s", b)
	}
	var n export.NullString
	require.Error(t, json.Unmarshal([]byte(`3`), &n))
}

func TestReadDocumentMissingUser(t *testing.T) {
	_, err := export.ReadDocument(context.Background(), memstore.New(), "nobody", time.Now())
	if !errors.Is(err, export.ErrUserNotFound) {
		t.Fatalf("err = %v, want ErrUserNotFound", err)
	}
}

// TestFormatDocExample keeps the example in docs/FORMAT.md byte for byte
// equal to the golden file printed by JSON.stringify.
func TestFormatDocExample(t *testing.T) {
	md, err := os.ReadFile("docs/FORMAT.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(md), "```json\n")
	require.True(t, ok, "docs/FORMAT.md has no json example")
	example, _, ok := strings.Cut(rest, "\n```")
	require.True(t, ok)
	require.Equal(t, readGolden(t, "contract-example"), example)
}
