// Package hub serves WebSocket clients: it authenticates them, subscribes
// them to the channels they may see, and fans out every publication the
// broker delivers to the sessions of that channel on this node.
//
// [Hub] is one node. It is the [broker.Handler] of its broker and the
// http.Handler of GET /ws. Each connection is a [Session] with a bounded
// send queue and one writer goroutine; a node holds one broker subscription
// per channel in use, counted over its sessions. Start with [New].
//
// A session's life is in session.go; its queue and writer in
// sendqueue.go, its client's pace and pings in liveness.go, the client's
// ops in ops.go, and its side of each channel's stream (each event once
// and in order, replays, the repair of a gap) in delivery.go, the hub's
// side of a repair in repair.go.
//
// A connection without extensions, the default, is upgraded, read and
// written by the hub itself (handshake.go, plain.go, package wsframe), so
// that an idle one holds little; one that offers permessage-deflate to a
// hub with Config.Compression goes through the WebSocket library. Both sit
// behind the session's transport (transport.go).
//
// For the server API (docs/protocol.md#server-api) a hub tells its [Presence] of every
// session and subscription and answers the presence op from it
// (presence.go), asks its [Revocations] about each token at connect and
// on refresh, and again about those they could not answer for, until they
// do ([Hub.RunRechecks]), and closes a user's sessions with 4010 on
// [Hub.Disconnect] (revoke.go).
package hub
