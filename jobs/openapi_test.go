package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/agentbot/export"
	"github.com/agentbot/export/jobs"
)

// TestOpenAPIMatchesJobHandler keeps the job routes of docs/openapi.yaml
// in step with the handler: for each documented operation, the statuses
// documented are exactly those a request can get, each is produced here,
// and every error answer is the Error object.
func TestOpenAPIMatchesJobHandler(t *testing.T) {
	raw, err := os.ReadFile("../docs/openapi.yaml")
	require.NoError(t, err)
	var spec struct {
		Paths map[string]map[string]struct {
			Responses map[string]any `yaml:"responses"`
		} `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &spec))

	e := sqliteEngine(t)
	clock := newClock()
	samGate := make(chan struct{})
	gated := &userGate{Exporter: export.NewExporter(demoStore()), user: "user_sam", gate: samGate}
	r := newRunner(t, e, gated, jobs.WithClock(clock.Now), jobs.WithCooldown(time.Hour))
	h := jobs.NewHandler(r, headerUser)
	failing := jobs.NewHandler(r, func(*http.Request) (string, error) { return "", errors.New("the session store is down") })
	// A second instance on the same database and files, whose storage
	// mints URLs (instances sharing a queue must share the storage: any of
	// them may work a job).
	presigning := jobs.NewHandler(newRunner(t, e, gated, jobs.WithClock(clock.Now), jobs.WithCooldown(time.Hour),
		jobs.WithStorage(fakeRedirector{r.Storage().(*jobs.LocalDir)}), jobs.WithPresignedRedirect(time.Minute)), headerUser)
	t.Cleanup(func() { close(samGate) }) // before the runners stop
	ctx := context.Background()

	// A ready job of Jane's, and one of Sam's held running.
	ready, _, err := r.Enqueue(ctx, "user_jane")
	require.NoError(t, err)
	readyJob := waitFor(t, r, "user_jane", ready.ID, jobs.StatusReady)
	active, _, err := r.Enqueue(ctx, "user_sam")
	require.NoError(t, err)
	waitFor(t, r, "user_sam", active.ID, jobs.StatusRunning)

	unknown := "/api/exports/" + strings.Repeat("a", 32)
	dl := "/api/exports/" + ready.ID + "/download"
	type scenario struct {
		h      http.Handler
		method string
		path   string
		user   string
		hdr    []string
	}
	scenarios := map[string]map[string]map[string]*scenario{
		"/api/exports": {
			"post": {
				"202": &scenario{h, "POST", "/api/exports", "user_new", nil},
				"200": &scenario{h, "POST", "/api/exports", "user_sam", nil},
				"401": &scenario{h, "POST", "/api/exports", "", nil},
				"405": &scenario{h, "PUT", "/api/exports", "user_jane", nil},
				"429": &scenario{h, "POST", "/api/exports", "user_jane", nil}, // finished just now: the cooldown
				"500": &scenario{failing, "POST", "/api/exports", "user_jane", nil},
			},
			"get": {
				"200": &scenario{h, "GET", "/api/exports", "user_jane", nil},
				"401": &scenario{h, "GET", "/api/exports", "", nil},
				"405": &scenario{h, "PATCH", "/api/exports", "user_jane", nil},
				"500": &scenario{failing, "GET", "/api/exports", "user_jane", nil},
			},
		},
		"/api/exports/{id}": {
			"get": {
				"200": &scenario{h, "GET", "/api/exports/" + ready.ID, "user_jane", nil},
				"401": &scenario{h, "GET", "/api/exports/" + ready.ID, "", nil},
				"404": &scenario{h, "GET", "/api/exports/" + ready.ID, "user_sam", nil},
				"405": &scenario{h, "PUT", "/api/exports/" + ready.ID, "user_jane", nil},
				"500": &scenario{failing, "GET", "/api/exports/" + ready.ID, "user_jane", nil},
			},
			"delete": {
				"204": nil, // run last, below
				"401": &scenario{h, "DELETE", "/api/exports/" + ready.ID, "", nil},
				"404": &scenario{h, "DELETE", unknown, "user_jane", nil},
				"405": &scenario{h, "POST", "/api/exports/" + ready.ID, "user_jane", nil},
				"500": &scenario{failing, "DELETE", "/api/exports/" + ready.ID, "user_jane", nil},
			},
		},
		"/api/exports/{id}/download": {
			"get": {
				"200": &scenario{h, "GET", dl, "user_jane", nil},
				"206": &scenario{h, "GET", dl, "user_jane", []string{"Range", "bytes=0-9"}},
				"302": &scenario{presigning, "GET", dl, "user_jane", nil},
				"304": &scenario{h, "GET", dl, "user_jane", []string{"If-None-Match", `"` + readyJob.SHA256 + `"`}},
				"401": &scenario{h, "GET", dl, "", nil},
				"404": &scenario{h, "GET", unknown + "/download", "user_jane", nil},
				"405": &scenario{h, "DELETE", dl, "user_jane", nil},
				"409": &scenario{h, "GET", "/api/exports/" + active.ID + "/download", "user_sam", nil},
				"410": nil, // run last, below
				"416": &scenario{h, "GET", dl, "user_jane", []string{"Range", "bytes=999999-"}},
				"500": &scenario{failing, "GET", dl, "user_jane", nil},
			},
		},
	}
	check := func(t *testing.T, status string, s *scenario) {
		t.Helper()
		rec := do(t, s.h, s.method, s.path, s.user, s.hdr...)
		require.Equal(t, status, strconv.Itoa(rec.Code), rec.Body.String())
		assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		if rec.Code >= 400 {
			var body map[string]any
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Contains(t, body, "error")
		}
	}
	for path, ops := range scenarios {
		for method, byStatus := range ops {
			op, ok := spec.Paths[path][method]
			require.True(t, ok, "no %s %s in the spec", method, path)
			var documented, tested []string
			for s := range op.Responses {
				documented = append(documented, s)
			}
			for s := range byStatus {
				tested = append(tested, s)
			}
			slices.Sort(documented)
			slices.Sort(tested)
			assert.Equal(t, tested, documented, "%s %s: statuses documented", method, path)
			for status, s := range byStatus {
				if s != nil {
					t.Run(method+" "+path+" "+status, func(t *testing.T) { check(t, status, s) })
				}
			}
		}
	}
	t.Run("delete /api/exports/{id} 204", func(t *testing.T) {
		check(t, "204", &scenario{h, "DELETE", "/api/exports/" + active.ID, "user_sam", nil})
	})
	t.Run("get /api/exports/{id}/download 410", func(t *testing.T) {
		clock.Add(8 * 24 * time.Hour)
		check(t, "410", &scenario{h, "GET", dl, "user_jane", nil})
	})
	// Every documented job path is one of the above.
	for path := range spec.Paths {
		if strings.HasPrefix(path, "/api/exports") {
			assert.Contains(t, scenarios, path)
		}
	}
}

// fakeRedirector is a LocalDir that mints URLs of a made-up host.
type fakeRedirector struct{ *jobs.LocalDir }

func (fakeRedirector) RedirectURL(_ context.Context, key string, ttl time.Duration, _ string) (string, error) {
	return "https://files.example/" + key + "?expires=" + ttl.String(), nil
}

// userGate holds the exports of one user until its gate is closed.
type userGate struct {
	export.Exporter
	user string
	gate chan struct{}
}

func (g *userGate) Export(ctx context.Context, w io.Writer, req export.Request) (export.Result, error) {
	if req.UserID == g.user {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return export.Result{}, ctx.Err()
		}
	}
	return g.Exporter.Export(ctx, w, req)
}
