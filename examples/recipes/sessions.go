package recipes

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/alexedwards/scs/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/sessions"

	"github.com/agentbot/export"
)

// SCS resolves the user from an alexedwards/scs session whose key
// "userID" the application set at sign-in. The export handler must be
// wrapped in sm.LoadAndSave, as every scs handler is.
func SCS(sm *scs.SessionManager) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		if id := sm.GetString(r.Context(), "userID"); id != "" {
			return id, nil
		}
		return "", export.ErrNoSession
	}
}

// GorillaSessions resolves the user from a gorilla/sessions session named
// "session" whose value "userID" the application set at sign-in. A cookie
// that does not verify is no session (401), not a failure (500).
func GorillaSessions(store sessions.Store) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		s, err := store.Get(r, "session")
		if err != nil {
			return "", fmt.Errorf("%w: %v", export.ErrNoSession, err)
		}
		if id, ok := s.Values["userID"].(string); ok && id != "" {
			return id, nil
		}
		return "", export.ErrNoSession
	}
}

// JWTBearer resolves the user from an "Authorization: Bearer <JWT>"
// header signed with HMAC-SHA256 under key: the token's subject is the
// user ID. It accepts only HS256 (never "none", never a key confusion),
// requires an expiry, and checks it; any bad token is no session.
func JWTBearer(key []byte) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return "", export.ErrNoSession
		}
		var claims jwt.RegisteredClaims
		_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return key, nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
		if err != nil || claims.Subject == "" {
			return "", fmt.Errorf("%w: bad bearer token: %v", export.ErrNoSession, err)
		}
		return claims.Subject, nil
	}
}
