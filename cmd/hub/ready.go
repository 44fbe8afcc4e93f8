package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/imhub/imhub/hub/broker"
)

// readyHandler answers GET /readyz: "ok", or 503 with "draining",
// "broker unavailable", or why the server API's parts are not ready (api
// says, "" when they are): "control channel unavailable" (the node could
// not be told to disconnect its clients, so it should get none) or
// "revocations not loaded" (it could not judge tokens by them while Redis
// is away). The broker's own reason names where Redis is, which is for the
// operator and not for whoever can reach the port: it goes to the log,
// once each time readiness changes rather than on every probe, which
// comes every second or so from each load balancer.
func readyHandler(b broker.Broker, api func() string, draining *atomic.Bool, log *slog.Logger) http.Handler {
	var (
		mu       sync.Mutex
		down     bool
		apiWhy   string
		apiKnown bool
	)
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		err := b.Ready()
		mu.Lock()
		if changed := (err != nil) != down; changed {
			down = err != nil
			if down {
				log.Warn("not ready: broker unavailable", "err", err)
			} else {
				log.Info("ready: broker available again")
			}
		}
		mu.Unlock()
		if err != nil {
			http.Error(w, "broker unavailable", http.StatusServiceUnavailable)
			return
		}
		why := api()
		mu.Lock()
		if changed := !apiKnown || why != apiWhy; changed {
			if why != "" {
				log.Warn("not ready: " + why)
			} else if apiKnown {
				log.Info("ready again", "was", apiWhy)
			}
			apiWhy, apiKnown = why, true
		}
		mu.Unlock()
		if why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}
