package hub

// SetStreamAdmitted has f run in the handler of every SSE stream h
// admits, before the stream opens; nil takes it away.
func SetStreamAdmitted(h *Hub, f func()) {
	if f == nil {
		h.streamAdmitted.Store(nil)
		return
	}
	h.streamAdmitted.Store(&f)
}
