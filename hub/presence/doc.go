// Package presence records who is connected to which channel, on this
// node and, through Redis, on every node (the presence op and GET /api/presence of
// docs/protocol.md). Start with [Tracker]: the hub tells it of every session
// and subscription, it answers [Tracker.Users] and [Tracker.Connections].
//
// Without Redis (the in-process broker: one node) it answers from memory.
// With Redis, each node keeps its own counts in memory, and a writer
// goroutine copies the changed ones to Redis in pipelined batches, so that
// a connect never waits on Redis. Each channel's counts are one hash,
// hash-tagged like the broker's keys of the channel (one Redis Cluster
// slot), with a field per node and user; a node's fields count only while
// the node's heartbeat key lives, so a node that dies leaves presence once
// that key expires (TTL), and one that stops cleanly removes its key and
// fields at once.
package presence
