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
// "broker unavailable" or "control channel unavailable" (the node could
// not be told to disconnect its clients, so it should get none; control
// reports whether it can). The broker's own reason names where Redis is,
// which is for the operator and not for whoever can reach the port: it
// goes to the log, once each time readiness changes rather than on every
// probe, which comes every second or so from each load balancer.
func readyHandler(b broker.Broker, control func() bool, draining *atomic.Bool, log *slog.Logger) http.Handler {
	var (
		mu          sync.Mutex
		down        bool
		controlDown bool
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
		up := control()
		mu.Lock()
		if changed := up == controlDown; changed {
			controlDown = !up
			if controlDown {
				log.Warn("not ready: control channel not subscribed")
			} else {
				log.Info("ready: control channel subscribed")
			}
		}
		mu.Unlock()
		if !up {
			http.Error(w, "control channel unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}
