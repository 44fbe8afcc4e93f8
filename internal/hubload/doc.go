// Package hubload is what the load tools, cmd/hubbench and cmd/hubsoak,
// share to drive hubs through their public interfaces only: the
// processes a run starts (proc.go: redis-server, or a primary with a
// synced replica, and hub binaries), a lean WebSocket client (ws.go),
// signed callbacks sent at a rate (publish.go) and a reader of a hub's
// /metrics (metrics.go).
//
// Start with Publisher: it paces messages over a number of senders and
// counts what the server under test accepted; HubCallbacks is the sender
// for a hub, and a tool supplies its own for another server.
package hubload
