// Package broker carries normalized IM events from the node that received a
// callback to every node that has a client interested in them.
//
// A [Broker] does four things: it publishes a [Message] to the channels it
// names, at most once per message ID within a dedupe window; it assigns each
// publication a per-channel offset that is the same on every node; it keeps
// a bounded history per channel; and it delivers publications of the channels
// a node has subscribed to into that node's [Handler].
//
// Each position also carries a tag that names the publication at its
// offset (see [Position]), so that a stream Redis rewrote after losing
// writes (a replica promoted without them) is told from the one a client
// was sent, though it hands out the same offsets again. [ReplicaWait] makes
// a Redis publication wait until a replica holds it, so that such a loss
// does not happen to what was acknowledged.
//
// Two implementations share one contract, checked by the conformance suite in
// package brokertest: [Memory], for a single node, and [Redis], which joins any
// number of nodes through Redis pub/sub: one server, a primary watched by
// Sentinel, or a Redis Cluster with sharded pub/sub. Start with [Broker], then [NewMemory]
// or [NewRedis].
package broker
