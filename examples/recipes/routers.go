// Package recipes shows, in a few lines each, how to mount the export
// handler on common routers and how to resolve the signed-in user from
// common session libraries. Each recipe is compiled and tested here
// (recipes_test.go), against the contract's statuses for GET, HEAD,
// other methods and look-alike paths.
//
// It is a module of its own so that none of these libraries becomes a
// dependency of the export module: copy the recipe you need.
package recipes

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/labstack/echo/v4"
)

// ServeMux mounts h on the standard library's router. Registered without
// a method, the handler answers every method itself: HEAD like GET, and
// the format's JSON 405 for the rest. ("GET /api/export" also works, but
// then ServeMux answers other methods with its own plain-text 405.)
func ServeMux(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/export", h)
	return mux
}

// Chi mounts h on chi. r.Handle takes every method, so HEAD reaches the
// handler and other methods get its JSON 405. With r.Get instead, chi
// answers HEAD with 405 unless the router uses middleware.GetHead.
func Chi(h http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Handle("/api/export", h)
	return r
}

// Gin mounts h on gin with gin.WrapH. r.Any covers GET, HEAD and the
// other common methods, which the handler answers with its JSON 405;
// methods outside gin's list (PROPFIND...) get gin's own 404.
func Gin(h http.Handler) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Any("/api/export", gin.WrapH(h))
	return r
}

// Echo mounts h on echo with echo.WrapHandler. e.Any covers GET, HEAD
// and the other common methods, as gin's does.
func Echo(h http.Handler) http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.Any("/api/export", echo.WrapHandler(h))
	return e
}
