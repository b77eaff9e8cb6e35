package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/agentbot/export"
)

const cookieName = "demo_session"

// app is the demo web application: sessions, a page and the export.
type app struct {
	store  export.Store
	users  []string // shown on the sign-in page
	logger *slog.Logger

	// replaced, if set, reports that the database file was replaced
	// since the start: from then on every request is refused (503) until
	// a restart opens the new file.
	replaced func() error
	timeouts export.Timeouts // the export handler's deadlines

	mu         sync.Mutex
	sessions   map[string]string // random token -> user ID
	replacedAt error             // sticky: the first report of replaced
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
	exp := export.NewHandler(export.NewExporter(a.store), a.currentUser, export.WithLogger(a.logger), export.WithTimeouts(a.timeouts))
	mux.Handle("/api/export", exp)
	if a.replaced == nil {
		return mux
	}
	return a.refuseIfReplaced(mux)
}

// refuseIfReplaced answers 503 once the database file has been replaced:
// JSON as the export's errors are on /api/export, the page elsewhere.
func (a *app) refuseIfReplaced(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		if a.replacedAt == nil {
			if err := a.replaced(); err != nil {
				a.replacedAt = err
				a.logger.Error("refusing every request until restarted", "error", err)
			}
		}
		err := a.replacedAt
		a.mu.Unlock()
		if err == nil {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Retry-After", "60")
		if r.URL.Path == "/api/export" {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"Export failed","message":"the database file was replaced; the server must be restarted"}`)
			return
		}
		a.render(w, r, http.StatusServiceUnavailable, "", "The database file was replaced while the server ran; it must be restarted to serve the new one.")
	})
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
//
// A user that does not exist is a 401; a failure to look the user up (the
// database down, just restarted, a row it cannot read) is a 503, logged
// with its cause, so that nobody looks for a wrong user ID when the
// database is the problem. Either way the answer is the page, with the
// reason, as the form that posted here expects.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("user")
	ctx, cancel := context.WithTimeout(r.Context(), lookupTimeout)
	defer cancel()
	err := a.store.View(ctx, id, func(export.Tx) error { return nil })
	switch {
	case errors.Is(err, export.ErrUserNotFound):
		a.render(w, r, http.StatusUnauthorized, "", "There is no user with that ID.")
		return
	case err != nil:
		a.logger.Error("sign-in: could not look the user up", "user_id", id, "error", err)
		w.Header().Set("Retry-After", "5")
		a.render(w, r, http.StatusServiceUnavailable, "", "The database did not answer; please try again in a moment.")
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
.note{background:#fff3cd;padding:.5rem .75rem;border-radius:4px}.error{background:#f8d7da;padding:.5rem .75rem;border-radius:4px}a.button,button{padding:.4rem .9rem}</style></head>
<body>
<h1>Download your data</h1>
<p class="note">Demo only: sign-in takes a user ID and no password.</p>
{{if .User}}
<p>Signed in as <strong id="who">{{.User}}</strong>.</p>
<p><a class="button" id="download" href="/api/export">Download my data</a></p>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>
{{else}}
{{if .Error}}<p class="error" id="error" role="alert">{{.Error}}</p>{{end}}
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
	a.render(w, r, http.StatusOK, user, "")
}

// render answers with the page: signed in as user ("" for the sign-in
// form), with an error message if there is one.
func (a *app) render(w http.ResponseWriter, r *http.Request, status int, user, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	users := a.users
	if len(users) == 0 {
		users = []string{""}
	}
	w.WriteHeader(status)
	pageTmpl.Execute(w, struct {
		User  string
		Users []string
		Error string
	}{user, users, message})
}

// lookupTimeout bounds the sign-in's look-up, so that a database that
// does not answer gives a 503, not a page that never loads.
const lookupTimeout = 10 * time.Second
