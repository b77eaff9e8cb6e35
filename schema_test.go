package export_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/schematest"
)

// TestSchemaAcceptsExports: every golden document, and what the handler
// serves from memstore for each, satisfies docs/export.schema.json; so
// does a large generated one.
func TestSchemaAcceptsExports(t *testing.T) {
	for name, doc := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			schematest.Validate(t, []byte(readGolden(t, name)))
			rec := do(newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), clockAt(doc.ExportedAt)), http.MethodGet)
			require.Equal(t, http.StatusOK, rec.Code)
			schematest.Validate(t, rec.Body.Bytes())
		})
	}
	t.Run("generated", func(t *testing.T) {
		var b strings.Builder
		_, err := export.NewExporter(&genStore{n: 5000}).Export(context.Background(), &b, export.Request{UserID: "big", ExportedAt: exportTime})
		require.NoError(t, err)
		schematest.Validate(t, []byte(b.String()))
	})
}

// TestSchemaRejects: the schema is not a formality; each of these breaks
// the format and fails it.
func TestSchemaRejects(t *testing.T) {
	base := readGolden(t, "contract-example")
	cases := map[string][2]string{ // name: {old, new} in the example
		"version 1.1":               {`"version": "1.0"`, `"version": "1.1"`},
		"timestamp without millis":  {`"createdAt": "2026-03-01T00:00:00.000Z"`, `"createdAt": "2026-03-01T00:00:00Z"`},
		"timestamp with an offset":  {`"exportedAt": "2026-04-02T12:00:00.000Z"`, `"exportedAt": "2026-04-02T12:00:00.000+00:00"`},
		"month 13":                  {`"exportedAt": "2026-04-02T12:00:00.000Z"`, `"exportedAt": "2026-13-02T12:00:00.000Z"`},
		"missing email":             {`"email": "user@example.com",`, ``},
		"a secret in an agent":      {`"model": "gpt-4o",`, `"model": "gpt-4o", "apiKey": "sk-1",`},
		"a key in the user":         {`"role": "user",`, `"role": "user", "passwordHash": "x",`},
		"null section":              {`"workflows": [`, `"workflows": null, "old": [`},
		"null id":                   {`"id": "agent_xyz"`, `"id": null`},
		"fractional credits":        {`"referralCredits": 0`, `"referralCredits": 0.5`},
		"enabled as a string":       {`"enabled": true`, `"enabled": "true"`},
		"added section not objects": {`"workflows": [`, `"notes": ["a"], "workflows": [`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			broken := strings.Replace(base, c[0], c[1], 1)
			require.NotEqual(t, base, broken, "the case changes nothing")
			require.Error(t, schematest.Check(t, []byte(broken)))
		})
	}
	added := strings.Replace(base, "\n}", `, "notifications": [{"id": "n1", "read": false}]`+"\n}", 1)
	require.NoError(t, schematest.Check(t, []byte(added)), "an added section of objects is allowed")
}

// openAPI is the part of docs/openapi.yaml the test compares.
type openAPI struct {
	Paths map[string]map[string]struct {
		Responses map[string]openAPIResponse `yaml:"responses"`
	} `yaml:"paths"`
	Components struct {
		Responses map[string]openAPIResponse `yaml:"responses"`
	} `yaml:"components"`
}

type openAPIResponse struct {
	Ref     string         `yaml:"$ref"`
	Headers map[string]any `yaml:"headers"`
	Content map[string]struct {
		Schema  map[string]any `yaml:"schema"`
		Example map[string]any `yaml:"example"`
	} `yaml:"content"`
}

// TestOpenAPIMatchesHandler keeps docs/openapi.yaml in step with the
// handler: the same statuses for GET and HEAD, the same headers on each
// (both ways: nothing documented is missing, nothing sent is
// undocumented), the errors' bodies as documented, and the 200's body
// described by the published schema.
func TestOpenAPIMatchesHandler(t *testing.T) {
	raw, err := os.ReadFile("docs/openapi.yaml")
	require.NoError(t, err)
	var spec openAPI
	require.NoError(t, yaml.Unmarshal(raw, &spec))
	path, ok := spec.Paths["/api/export"]
	require.True(t, ok, "no /api/export in the spec")

	doc := goldenCases(t)["contract-example"]
	busy := export.NewLimiter(export.Limits{})
	release, err := busy.Acquire(context.Background(), doc.User.ID)
	require.NoError(t, err)
	defer release()
	handlers := map[string]http.Handler{
		"200": newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID)),
		"401": newTestHandler(t, storeOf(t, doc), fixedUser("")),
		"429": newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), export.WithLimiter(busy)),
		"500": newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageWorkflows}, fixedUser(doc.User.ID)),
		"503": newTestHandler(t, &frozenStore{g: &genStore{n: 10}, stage: export.StageAgents}, fixedUser(doc.User.ID),
			export.WithTimeouts(export.Timeouts{StoreIdle: 20 * time.Millisecond})),
	}
	handlers["405"] = handlers["200"]
	// Headers every response has that the spec need not list.
	implicit := []string{"Content-Type", "Content-Length"}

	for _, method := range []string{"get", "head"} {
		op, ok := path[method]
		require.True(t, ok, "no %s in the spec", method)
		var statuses []string
		for s := range op.Responses {
			statuses = append(statuses, s)
		}
		slices.Sort(statuses)
		require.Equal(t, []string{"200", "401", "405", "429", "500", "503"}, statuses, "%s: the statuses the handler answers with", method)

		for _, status := range statuses {
			t.Run(method+"/"+status, func(t *testing.T) {
				resp := op.Responses[status]
				if resp.Ref != "" {
					name := strings.TrimPrefix(resp.Ref, "#/components/responses/")
					resp, ok = spec.Components.Responses[name]
					require.True(t, ok, "unresolved %s", resp.Ref)
				}
				m := strings.ToUpper(method)
				if status == "405" {
					m = http.MethodPost
				}
				// As a browser asks, so that a 200 is coded and shows
				// Content-Encoding.
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(m, "/api/export", nil)
				req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
				handlers[status].ServeHTTP(rec, req)
				require.Equal(t, status, fmt.Sprint(rec.Code))

				var documented []string
				for h := range resp.Headers {
					documented = append(documented, http.CanonicalHeaderKey(h))
					if h != "Content-Length" { // optional: absent when streaming
						require.NotEmpty(t, rec.Header().Get(h), "documented header %s not sent", h)
					}
				}
				for h := range rec.Header() {
					if !slices.Contains(implicit, h) {
						require.Contains(t, documented, h, "header %s is sent but not documented", h)
					}
				}
				if status == "200" {
					if method == "get" {
						require.Equal(t, "./export.schema.json", resp.Content["application/json"].Schema["$ref"])
					}
					return
				}
				example := resp.Content["application/json"].Example
				require.NotEmpty(t, example, "no example body")
				if m != http.MethodHead {
					var want strings.Builder
					want.WriteString(`{"error":"` + example["error"].(string) + `"`)
					if msg, ok := example["message"]; ok {
						want.WriteString(`,"message":"` + msg.(string) + `"`)
					}
					want.WriteString("}")
					require.Equal(t, want.String(), rec.Body.String())
				}
			})
		}
	}
}
