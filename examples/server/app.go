package main

import (
	"crypto/rand"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net/http"
	"sync"

	"github.com/agentbot/export"
)

const cookieName = "demo_session"

// app is the demo web application: sessions, a page and the export.
type app struct {
	store  export.Store
	users  []string // shown on the sign-in page
	logger *slog.Logger

	mu       sync.Mutex
	sessions map[string]string // random token -> user ID
}

func newApp(store export.Store, users []string, logger *slog.Logger) *app {
	return &app{store: store, users: users, logger: logger, sessions: make(map[string]string)}
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	// Mounted without a method so that the handler answers every method
	// itself (the contract's JSON 405); "GET /api/export" would leave other
	// methods to the mux's plain-text 405. The exact path only: nothing
	// under /api/export/ serves an export.
	exp := export.NewHandler(export.NewExporter(a.store), a.currentUser, export.WithLogger(a.logger))
	mux.Handle("/api/export", exp)
	return mux
}

// currentUser is the export handler's resolver: the user of the session
// cookie, or ErrNoSession.
func (a *app) currentUser(r *http.Request) (string, error) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return "", export.ErrNoSession
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.sessions[c.Value]
	if !ok {
		return "", export.ErrNoSession
	}
	return id, nil
}

// login signs in as any existing user ID, with no password.
// DEMO ONLY: a real application authenticates the user here.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("user")
	if err := a.store.View(r.Context(), id, func(export.Tx) error { return nil }); err != nil {
		http.Error(w, "unknown user", http.StatusUnauthorized)
		return
	}
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather than return weak bytes)
	token := base64.RawURLEncoding.EncodeToString(b)
	a.mu.Lock()
	a.sessions[token] = id
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>export demo</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}
.note{background:#fff3cd;padding:.5rem .75rem;border-radius:4px}a.button,button{padding:.4rem .9rem}</style></head>
<body>
<h1>Download your data</h1>
<p class="note">Demo only: sign-in takes a user ID and no password.</p>
{{if .User}}
<p>Signed in as <strong id="who">{{.User}}</strong>.</p>
<p><a class="button" id="download" href="/api/export">Download my data</a></p>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>
{{else}}
<p id="who">Not signed in.</p>
<form method="post" action="/login">
<label>User ID <input name="user" size="30" value="{{index .Users 0}}"></label>
<button type="submit">Sign in</button>
</form>
<p>Users in this database:{{range .Users}} <code>{{.}}</code>{{end}}</p>
{{end}}
</body></html>
`))

func (a *app) page(w http.ResponseWriter, r *http.Request) {
	user, _ := a.currentUser(r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	users := a.users
	if len(users) == 0 {
		users = []string{""}
	}
	pageTmpl.Execute(w, struct {
		User  string
		Users []string
	}{user, users})
}
