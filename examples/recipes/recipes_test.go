package recipes_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/examples/recipes"
	"github.com/agentbot/export/memstore"
)

func store() *memstore.Store {
	s := memstore.New()
	s.PutUser(export.User{ID: "alice", Email: "alice@example.com", Role: "user"})
	s.PutUser(export.User{ID: "bob", Email: "bob@example.com", Role: "user"})
	s.PutAgent("alice", export.Agent{ID: "a1", Name: "alice's agent", Model: "m", Status: "s", CreatedAt: time.Unix(0, 0), UpdatedAt: time.Unix(0, 0)})
	return s
}

func handler(resolve func(*http.Request) (string, error)) http.Handler {
	return export.NewHandler(export.NewExporter(store()), resolve, export.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
}

type result struct {
	status int
	header http.Header
	body   string
}

func send(t *testing.T, c *http.Client, method, url string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return result{resp.StatusCode, resp.Header, string(b)}
}

// TestRouters: on each router, mounted as its recipe says, GET serves the
// document, HEAD the same headers without a body, other methods the
// format's JSON 405, and look-alike paths no export.
func TestRouters(t *testing.T) {
	routers := map[string]func(http.Handler) http.Handler{
		"net/http": recipes.ServeMux, "chi": recipes.Chi, "gin": recipes.Gin, "echo": recipes.Echo,
	}
	alice := func(*http.Request) (string, error) { return "alice", nil }
	for name, mount := range routers {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(mount(handler(alice)))
			defer srv.Close()
			c := srv.Client()

			// Go's Transport asks for gzip on a GET but not on a HEAD: the
			// same Accept-Encoding on both, as a browser sends, to compare.
			get := send(t, c, http.MethodGet, srv.URL+"/api/export", "Accept-Encoding", "identity")
			require.Equal(t, http.StatusOK, get.status, get.body)
			require.Contains(t, get.body, `"id": "alice"`)
			require.Contains(t, get.body, "alice's agent")
			require.Equal(t, "no-store", get.header.Get("Cache-Control"))
			require.Equal(t, "nosniff", get.header.Get("X-Content-Type-Options"))
			require.Contains(t, get.header.Get("Content-Disposition"), `attachment; filename="agentbot-export-alice-`)

			head := send(t, c, http.MethodHead, srv.URL+"/api/export", "Accept-Encoding", "identity")
			require.Equal(t, http.StatusOK, head.status)
			require.Empty(t, head.body)
			require.Equal(t, get.header.Get("Content-Length"), head.header.Get("Content-Length"))
			require.Equal(t, get.header.Get("Content-Disposition"), head.header.Get("Content-Disposition"))
			gzGet := send(t, c, http.MethodGet, srv.URL+"/api/export", "Accept-Encoding", "gzip")
			gzHead := send(t, c, http.MethodHead, srv.URL+"/api/export", "Accept-Encoding", "gzip")
			require.Equal(t, "gzip", gzGet.header.Get("Content-Encoding"))
			require.Equal(t, "gzip", gzHead.header.Get("Content-Encoding"))
			// (Their lengths may differ: each is an export with its own
			// exportedAt. The core's tests compare them under one clock.)
			require.Equal(t, "Accept-Encoding", gzGet.header.Get("Vary"))

			for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
				r := send(t, c, m, srv.URL+"/api/export")
				require.Equal(t, http.StatusMethodNotAllowed, r.status, m)
				require.Equal(t, `{"error":"Method Not Allowed"}`, r.body, m)
				require.Equal(t, "GET, HEAD", r.header.Get("Allow"), m)
				require.Equal(t, "no-store", r.header.Get("Cache-Control"), m)
			}
			for _, p := range []string{"/api/export/x.css", "/api/export.css", "/api/exportx"} {
				r := send(t, c, http.MethodGet, srv.URL+p)
				require.NotEqual(t, http.StatusOK, r.status, p)
				require.NotContains(t, r.body, "alice", p)
			}
		})
	}
}

// newJarClient is a client that keeps cookies, as a browser does.
func newJarClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar}
}

func TestSCS(t *testing.T) {
	sm := scs.New()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "userID", r.FormValue("user")) // the application's real sign-in goes here
	})
	mux.Handle("/api/export", handler(recipes.SCS(sm)))
	srv := httptest.NewServer(sm.LoadAndSave(mux))
	defer srv.Close()
	c := newJarClient(t)

	require.Equal(t, http.StatusUnauthorized, send(t, c, http.MethodGet, srv.URL+"/api/export").status)
	resp, err := c.PostForm(srv.URL+"/login", url.Values{"user": {"alice"}})
	require.NoError(t, err)
	resp.Body.Close()
	r := send(t, c, http.MethodGet, srv.URL+"/api/export")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, `"id": "alice"`)

	forged := send(t, http.DefaultClient, http.MethodGet, srv.URL+"/api/export", "Cookie", "session=forged-token")
	require.Equal(t, http.StatusUnauthorized, forged.status)
}

func TestGorillaSessions(t *testing.T) {
	cookies := sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef"))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s, _ := cookies.Get(r, "session")
		s.Values["userID"] = r.FormValue("user")
		require.NoError(t, s.Save(r, w))
	})
	mux.Handle("/api/export", handler(recipes.GorillaSessions(cookies)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := newJarClient(t)

	require.Equal(t, http.StatusUnauthorized, send(t, c, http.MethodGet, srv.URL+"/api/export").status)
	resp, err := c.PostForm(srv.URL+"/login", url.Values{"user": {"alice"}})
	require.NoError(t, err)
	resp.Body.Close()
	r := send(t, c, http.MethodGet, srv.URL+"/api/export")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, `"id": "alice"`)

	// A cookie signed with another key is no session: 401, not 500.
	other := sessions.NewCookieStore([]byte("another key, another key, anoth"))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	s, _ := other.Get(req, "session")
	s.Values["userID"] = "bob"
	require.NoError(t, s.Save(req, rec))
	forged := send(t, http.DefaultClient, http.MethodGet, srv.URL+"/api/export", "Cookie", strings.Split(rec.Header().Get("Set-Cookie"), ";")[0])
	require.Equal(t, http.StatusUnauthorized, forged.status, forged.body)
}

func TestJWTBearer(t *testing.T) {
	key := []byte("a secret of the application, 32+")
	srv := httptest.NewServer(recipes.ServeMux(handler(recipes.JWTBearer(key))))
	defer srv.Close()
	sign := func(method jwt.SigningMethod, k any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(k)
		require.NoError(t, err)
		return "Bearer " + s
	}
	hour := time.Now().Add(time.Hour).Unix()
	cases := []struct {
		name   string
		auth   string
		status int
	}{
		{"valid", sign(jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "alice", "exp": hour}), http.StatusOK},
		{"no header", "", http.StatusUnauthorized},
		{"not a bearer", "Basic YWxpY2U6eA==", http.StatusUnauthorized},
		{"garbage", "Bearer not.a.token", http.StatusUnauthorized},
		{"expired", sign(jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}), http.StatusUnauthorized},
		{"no expiry", sign(jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "alice"}), http.StatusUnauthorized},
		{"other key", sign(jwt.SigningMethodHS256, []byte("someone else's key, 32 bytes...."), jwt.MapClaims{"sub": "bob", "exp": hour}), http.StatusUnauthorized},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "bob", "exp": hour}), http.StatusUnauthorized},
		{"HS512", sign(jwt.SigningMethodHS512, key, jwt.MapClaims{"sub": "bob", "exp": hour}), http.StatusUnauthorized},
		{"no subject", sign(jwt.SigningMethodHS256, key, jwt.MapClaims{"exp": hour}), http.StatusUnauthorized},
		{"unknown user", sign(jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "mallory", "exp": hour}), http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.auth != "" {
				hdr = []string{"Authorization", c.auth}
			}
			r := send(t, http.DefaultClient, http.MethodGet, srv.URL+"/api/export?user=bob", hdr...)
			require.Equal(t, c.status, r.status, r.body)
			require.NotContains(t, r.body, "bob@example.com")
			if c.status == http.StatusOK {
				require.Contains(t, r.body, `"id": "alice"`)
			}
		})
	}
}

// TestChiNeedsHelpForHEAD checks the note on recipes.Chi: mounted with
// r.Get, chi refuses HEAD unless middleware.GetHead routes it to GET.
func TestChiNeedsHelpForHEAD(t *testing.T) {
	h := handler(func(*http.Request) (string, error) { return "alice", nil })
	plain := chi.NewRouter()
	plain.Get("/api/export", h.ServeHTTP)
	helped := chi.NewRouter()
	helped.Use(middleware.GetHead)
	helped.Get("/api/export", h.ServeHTTP)
	for name, r := range map[string]http.Handler{"r.Get": plain, "r.Get with GetHead": helped} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/api/export", nil))
		want := http.StatusOK
		if name == "r.Get" {
			want = http.StatusMethodNotAllowed
		}
		require.Equal(t, want, rec.Code, name)
	}
}
