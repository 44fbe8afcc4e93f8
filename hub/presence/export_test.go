package presence

// SetBeforeReap makes f run in t's reads between the MGET of the
// heartbeats and the HDEL of dead nodes' fields.
func SetBeforeReap(t *Tracker, f func()) { t.beforeReap = f }
