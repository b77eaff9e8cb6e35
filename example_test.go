package export_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/agentbot/export"
	"github.com/agentbot/export/memstore"
)

// A host mounts the handler on its mux with a resolver that reads its own
// session. Here the "session" is a header, to keep the example short; a
// real resolver reads a session cookie or token.
func ExampleNewHandler() {
	store := memstore.New()
	store.PutUser(export.User{ID: "user_abc123", Email: "user@example.com", Role: "user"})

	resolve := func(r *http.Request) (string, error) {
		id := r.Header.Get("X-Demo-Session") // stands in for a session lookup
		if id == "" {
			return "", export.ErrNoSession
		}
		return id, nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /api/export", export.NewHandler(export.NewExporter(store), resolve,
		export.WithClock(func() time.Time { return time.Date(2026, 4, 2, 12, 0, 0, 0, time.UTC) })))

	req := httptest.NewRequest("GET", "/api/export", nil)
	req.Header.Set("X-Demo-Session", "user_abc123")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Header().Get("Content-Disposition"))

	anonymous := httptest.NewRecorder()
	mux.ServeHTTP(anonymous, httptest.NewRequest("GET", "/api/export", nil))
	fmt.Println(anonymous.Code, anonymous.Body.String())
	// Output:
	// 200 attachment; filename="agentbot-export-user_abc-2026-04-02.json"
	// 401 {"error":"Unauthorized"}
}

// A host's unit test can fill a memstore and check the document its users
// will download, without a database or a server.
func ExampleReadDocument() {
	store := memstore.New()
	store.PutUser(export.User{ID: "u1", Email: "jane@example.com", Name: export.Some("Jane"), Role: "user"})
	created := time.Date(2026, 3, 1, 9, 30, 0, 123456789, time.UTC)
	store.PutAgent("u1", export.Agent{ID: "agent_b", Name: "second", Model: "gpt-4o", Status: "running", CreatedAt: created, UpdatedAt: created})
	store.PutAgent("u1", export.Agent{ID: "agent_a", Name: "first", Model: "gpt-4o", Status: "pending", CreatedAt: created, UpdatedAt: created})

	doc, err := export.ReadDocument(context.Background(), store, "u1", time.Date(2026, 4, 2, 12, 0, 0, 0, time.UTC))
	if err != nil {
		panic(err)
	}
	for _, a := range doc.Agents { // same createdAt: ordered by ID
		fmt.Println(a.ID, export.FormatTime(a.CreatedAt))
	}
	fmt.Println(doc.User.Plan.Valid, len(doc.Workflows))
	// Output:
	// agent_a 2026-03-01T09:30:00.123Z
	// agent_b 2026-03-01T09:30:00.123Z
	// false 0
}

// Export streams a user's document to any io.Writer: a file for a support
// request, a response, an archive.
func ExampleStoreExporter_Export() {
	store := memstore.New()
	store.PutUser(export.User{ID: "u1", Email: "a@example.com", Role: "user"})
	exp := export.NewExporter(store)
	res, err := exp.Export(context.Background(), os.Stdout, export.Request{UserID: "u1", ExportedAt: time.Date(2026, 4, 2, 12, 0, 0, 0, time.UTC)})
	fmt.Println()
	fmt.Println(res.Bytes, err)
	// Output:
	// {
	//   "exportedAt": "2026-04-02T12:00:00.000Z",
	//   "version": "1.0",
	//   "user": {
	//     "id": "u1",
	//     "email": "a@example.com",
	//     "name": null,
	//     "plan": null,
	//     "role": "user",
	//     "referralCode": null,
	//     "referralCredits": 0
	//   },
	//   "agents": [],
	//   "scheduledTasks": [],
	//   "workflows": []
	// }
	// 295 <nil>
}

// Decode reads an export file back and says exactly what is wrong with a
// bad one.
func ExampleDecode() {
	f, err := os.Open("testdata/golden/contract-example.json")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	doc, err := export.Decode(f)
	fmt.Println(doc.User.ID, len(doc.Agents), err)

	_, err = export.Decode(stringsReader(`{"exportedAt": "2026-04-02T12:00:00Z"}`))
	fmt.Println(err)
	// Output:
	// user_abc123 1 <nil>
	// export: invalid document: exportedAt: "2026-04-02T12:00:00Z" is not a timestamp of the form 2006-01-02T15:04:05.000Z
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// A host adds a section of its own; memstore keeps its records with the
// user's, so they come from the same snapshot.
func ExampleStoreExporter_AddSection() {
	store := memstore.New()
	store.PutUser(export.User{ID: "u1", Email: "a@example.com", Role: "user"})
	store.SetSection("u1", "apiKeys", []export.Record{
		{{Key: "name", Value: "ci"}, {Key: "lastUsedAt", Value: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}, {Key: "scopes", Value: "read"}},
	})
	exp := export.NewExporter(store)
	if err := exp.AddSection(memstore.Section("apiKeys")); err != nil {
		panic(err)
	}
	var out strings.Builder
	exp.Export(context.Background(), &out, export.Request{UserID: "u1", ExportedAt: time.Date(2026, 4, 2, 12, 0, 0, 0, time.UTC)})
	doc := out.String()
	fmt.Println(doc[strings.Index(doc, `  "apiKeys"`):])
	// Output:
	//   "apiKeys": [
	//     {
	//       "name": "ci",
	//       "lastUsedAt": "2026-03-01T09:00:00.000Z",
	//       "scopes": "read"
	//     }
	//   ]
	// }
}
