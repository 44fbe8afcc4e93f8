// Package broker carries normalized IM events from the node that received a
// callback to every node that has a client interested in them.
//
// A [Broker] does four things: it publishes a [Message] to the channels it
// names, at most once per message ID within a dedupe window; it assigns each
// publication a per-channel offset that is the same on every node; it keeps
// a bounded history per channel; and it delivers publications of the channels
// a node has subscribed to into that node's [Handler].
//
// Two implementations share one contract, checked by the conformance suite in
// package brokertest: [Memory], for a single node, and [Redis], which joins any
// number of nodes through Redis pub/sub: one server, a primary watched by
// Sentinel, or a Redis Cluster with sharded pub/sub. Start with [Broker], then [NewMemory]
// or [NewRedis].
package broker
