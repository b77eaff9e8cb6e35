package export_test

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"math"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/schematest"
	"github.com/agentbot/export/memstore"
)

// records is a Section.Read over fixed records.
func records(recs ...export.Record) func(context.Context, export.Tx) iter.Seq2[export.Record, error] {
	return func(context.Context, export.Tx) iter.Seq2[export.Record, error] {
		return func(yield func(export.Record, error) bool) {
			for _, r := range recs {
				if !yield(r, nil) {
					return
				}
			}
		}
	}
}

// TestAddedSectionsMatchNode: added sections come out as JSON.stringify
// writes them, for every kind of value, after workflows and in
// registration order (testdata/sections, printed by Node.js).
func TestAddedSectionsMatchNode(t *testing.T) {
	want, err := os.ReadFile("testdata/sections/added-sections.json")
	require.NoError(t, err)
	doc := goldenCases(t)["contract-example"]
	exp := export.NewExporter(storeOf(t, doc))
	require.NoError(t, exp.AddSection(export.Section{Name: "notifications", Read: records(
		export.Record{
			{Key: "id", Value: "n1"},
			{Key: "body", Value: []byte("line\n\"quoted\" <>& \u2028 \u0007 🎉")},
			{Key: "read", Value: false},
			{Key: "count", Value: int32(3)},
			{Key: "big", Value: export.Some("9007199254740993")},
			{Key: "score", Value: 1.5},
			{Key: "third", Value: 1.0 / 3},
			{Key: "tiny", Value: 1.5e-7},
			{Key: "small", Value: 0.000001},
			{Key: "huge", Value: 1e21},
			{Key: "large", Value: 123456789012345680000.0},
			{Key: "negZero", Value: math.Copysign(0, -1)},
			{Key: "notANumber", Value: math.NaN()},
			{Key: "infinite", Value: math.Inf(1)},
			{Key: "at", Value: time.Date(2026, 3, 1, 2, 0, 0, 123_999_999, time.FixedZone("", 2*3600))},
			{Key: "none", Value: nil},
		},
		export.Record{},
	)}))
	require.NoError(t, exp.AddSection(export.Section{Name: "files", Read: records()}))

	var b bytes.Buffer
	res, err := exp.Export(context.Background(), &b, export.Request{UserID: doc.User.ID, ExportedAt: doc.ExportedAt})
	require.NoError(t, err)
	requireSameText(t, string(want), b.String())
	require.Equal(t, map[string]int{"notifications": 2, "files": 0}, res.Sections)
	require.Equal(t, int64(b.Len()), res.Bytes)

	// The format's part is unchanged, the file decodes, and it satisfies
	// the published schema.
	back, err := export.Decode(bytes.NewReader(b.Bytes()))
	require.NoError(t, err)
	require.Equal(t, readGolden(t, "contract-example"), string(back.Bytes()))
	schematest.Validate(t, b.Bytes())
}

func TestAddSectionRejects(t *testing.T) {
	read := records()
	for _, name := range []string{"exportedAt", "version", "user", "agents", "scheduledTasks", "workflows",
		"", "1notes", "_notes", "no-tes", "no tes", "notés", `no"tes`, "notes\n", strings.Repeat("n", 65)} {
		err := export.NewExporter(memstore.New()).AddSection(export.Section{Name: name, Read: read})
		require.ErrorIs(t, err, export.ErrSectionName, "%q", name)
	}
	exp := export.NewExporter(memstore.New())
	require.NoError(t, exp.AddSection(export.Section{Name: "notes", Read: read}))
	require.NoError(t, exp.AddSection(export.Section{Name: "apiKeys_2", Read: read}))
	require.NoError(t, exp.AddSection(export.Section{Name: strings.Repeat("n", 64), Read: read}))
	require.ErrorIs(t, exp.AddSection(export.Section{Name: "notes", Read: read}), export.ErrSectionName, "a duplicate")
	require.Error(t, exp.AddSection(export.Section{Name: "memories"}), "no Read")
}

// TestAddedSectionFailures: a bad record or a failing read fails the
// export at stage "read <name>", and the handler answers with the
// contract's 500 naming the section and nothing else.
func TestAddedSectionFailures(t *testing.T) {
	doc := goldenCases(t)["contract-example"]
	failing := func(context.Context, export.Tx) iter.Seq2[export.Record, error] {
		return func(yield func(export.Record, error) bool) {
			if yield(export.Record{{Key: "id", Value: "1"}}, nil) {
				yield(nil, errSecret)
			}
		}
	}
	cases := map[string]struct {
		read func(context.Context, export.Tx) iter.Seq2[export.Record, error]
		err  string
	}{
		"store error":     {failing, "ApiKeyHash"},
		"unsupported":     {records(export.Record{{Key: "x", Value: struct{}{}}}), `field "x": unsupported value of type struct {}`},
		"duplicate field": {records(export.Record{{Key: "x", Value: 1}, {Key: "x", Value: 2}}), `field "x" appears twice`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			exp := export.NewExporter(storeOf(t, doc))
			require.NoError(t, exp.AddSection(export.Section{Name: "notes", Read: c.read}))
			res, err := exp.Export(context.Background(), &bytes.Buffer{}, export.Request{UserID: doc.User.ID, ExportedAt: doc.ExportedAt})
			if name == "store error" {
				require.Equal(t, map[string]int{"notes": 1}, res.Sections, "the records written before the failure")
			}
			var ee *export.Error
			require.ErrorAs(t, err, &ee)
			require.Equal(t, export.Stage("read notes"), ee.Stage)
			require.Equal(t, export.SectionStage("notes"), ee.Stage)
			require.ErrorContains(t, err, c.err)

			h := export.NewHandler(exp, fixedUser(doc.User.ID), export.WithLogger(quietLogger))
			requireErrorResponse(t, do(h, http.MethodGet), http.StatusInternalServerError, `{"error":"Export failed","message":"could not read notes"}`)
		})
	}
}

// TestAddedSectionThroughTheHandler: the audit event counts the added
// section's records.
func TestAddedSectionThroughTheHandler(t *testing.T) {
	s := exampleStore(t)
	require.NoError(t, s.SetSection("user_abc123", "notes", []export.Record{{{Key: "id", Value: "n1"}}, {{Key: "id", Value: "n2"}}}))
	exp := export.NewExporter(s)
	require.NoError(t, exp.AddSection(memstore.Section("notes")))
	var events []export.Event
	h := export.NewHandler(exp, fixedUser("user_abc123"), export.WithLogger(quietLogger),
		export.WithAuditHook(func(_ *http.Request, ev export.Event) { events = append(events, ev) }))
	rec := do(h, http.MethodGet)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "\"notes\": [\n    {\n      \"id\": \"n1\"\n    },\n    {\n      \"id\": \"n2\"\n    }\n  ]\n}")
	require.Len(t, events, 1)
	require.Equal(t, map[string]int{"notes": 2}, events[0].Sections)

	// memstore's section refuses another store's Tx instead of guessing.
	other := export.NewExporter(&faultStore{Store: s, stage: "none"})
	require.NoError(t, other.AddSection(memstore.Section("notes")))
	_, err := other.Export(context.Background(), &bytes.Buffer{}, export.Request{UserID: "user_abc123"})
	require.ErrorContains(t, err, "not a memstore view")
	require.False(t, errors.Is(err, export.ErrUserNotFound))
}
