// Package forward passes the IM callbacks the hub accepts on to an app's own
// backend (docs/protocol.md#forwarding), for apps whose single console callback URL now
// points at the hub.
//
// A [Forwarder] does two things. Commands the IM waits on a verdict for
// (*.CallbackBefore*) are proxied at once, within Config.Timeout, and the
// backend's answer is the IM's; when the backend fails, Config.Deny says
// what the IM is told instead ([Forwarder.Answer]). Every other accepted
// callback is queued ([Forwarder.Enqueue]) and delivered later by per-app
// workers ([Forwarder.Run]), at least once, retried with backoff until
// Config.MaxAge and then kept aside in a dead-letter list.
//
// The queue is a [Store]: [NewRedisStore] keeps it in Redis, one stream per
// app read through a consumer group that every replica shares, so that a
// replica that dies leaves its in-flight entries to the others;
// [NewMemoryStore] keeps it in the process, bounded and lost on restart.
// In front of either, the hub's spool (callback/spool) keeps entries on
// local disk while the store is unreachable: see [Sink].
package forward
