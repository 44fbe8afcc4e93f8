// Package control carries the server API's orders to every node and keeps
// its revocations (docs/protocol.md#server-api): [Bus] delivers a disconnect or a revoke
// to every node's handler, through a Redis pub/sub channel that no client
// channel can be named (or in process, for a hub that is the only node),
// and with [Bus.Gather] sums what each node's handler closed;
// [Revocations] keeps each revocation, in Redis and in every node's
// memory, until the tokens it refuses would have expired anyway.
package control
