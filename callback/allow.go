package callback

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/imhub/imhub/internal/clientaddr"
)

// ResultForbiddenAddr is the result of a callback from an address outside
// the allowed ranges.
const ResultForbiddenAddr = "forbidden_address"

// AllowConfig configures [Allow].
type AllowConfig struct {
	// Allowed are the address ranges callbacks may come from; empty
	// allows any.
	Allowed clientaddr.Prefixes
	Logger  *slog.Logger
	// Metrics, when set, counts refused callbacks.
	Metrics *Metrics
}

// Allow returns a handler that passes to next only the callbacks whose
// client address (see clientaddr.FromRequest) is in cfg.Allowed, and
// answers the others 403 in the IM's body shape, before anything else of
// them is looked at. The IM's signature covers neither the body nor most
// of the query, so the address the callback comes from is what tells the
// IM's servers from anyone else who learnt a valid Sign. With no ranges,
// next itself is returned.
func Allow(cfg AllowConfig, next http.Handler) http.Handler {
	if len(cfg.Allowed) == 0 {
		return next
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := clientaddr.FromRequest(r)
		if cfg.Allowed.Contains(addr) {
			next.ServeHTTP(w, r)
			return
		}
		cmd := r.URL.Query().Get("CallbackCommand")
		cfg.Metrics.count(cmd, ResultForbiddenAddr)
		cfg.Logger.Info("callback rejected", "status", http.StatusForbidden, "reason", "address not allowed",
			"client", addr.String(), "command", clip(cmd), "remote", clip(r.RemoteAddr))
		writeFail(w, http.StatusForbidden,
			fmt.Sprintf("callbacks are not accepted from %s: it is outside the hub's -callback-allow ranges", addr))
	})
}
