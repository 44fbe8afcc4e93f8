// Package hub serves WebSocket clients: it authenticates them, subscribes
// them to the channels they may see, and fans out every publication the
// broker delivers to the sessions of that channel on this node.
//
// [Hub] is one node. It is the [broker.Handler] of its broker and the
// http.Handler of GET /ws. Each connection is a [Session] with a bounded
// send queue and one writer goroutine; a node holds one broker subscription
// per channel in use, counted over its sessions. Start with [New].
package hub
