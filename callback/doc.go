// Package callback receives Tencent Cloud Chat (IM) webhooks and turns them
// into normalized events for the broker.
//
// [Handler] serves POST /im/callback: it checks the request in the order the
// wire contract gives (method, app, signature, size, JSON, fields), answers
// in the IM's own response shape, and publishes an accepted event once, even
// when the IM backend retries. [Parse] is the pure part: one callback body in,
// one [Event] and its channels out. Start with [NewHandler].
//
// Two rules for what comes from a request. Text that is not valid UTF-8 is
// repaired before it becomes an event (each bad byte U+FFFD, counted in
// imhub_callback_invalid_utf8_total), because one such event in a channel's
// history would fail every client that replays it. A value quoted in a log
// line or an answer is clipped to a few dozen bytes, because the checks that
// reject a caller run before anything is known about it.
package callback
