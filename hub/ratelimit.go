package hub

// frameBudget is a client's token bucket: cfg.ClientRate frames a second,
// cfg.ClientBurst at once. A refused frame costs a token too, so that a
// client that goes on sending past the limit owes more and more rather
// than getting every refill's worth through; once it owes a second's worth
// it is closed. It allocates nothing; the session serializes its use.
type frameBudget struct {
	tokens float64 // frames the client may send now; below zero, owed
	at     int64   // unix nanoseconds of the last frame
}

type verdict uint8

const (
	frameAllowed verdict = iota
	frameRefused         // answered with a rate_limited error, not carried out
	frameTooMany         // the client is closed with 1008
)

func newFrameBudget(now int64, burst int) frameBudget {
	return frameBudget{tokens: float64(burst), at: now}
}

// take charges one frame read at now.
func (b *frameBudget) take(now int64, rate float64, burst int) verdict {
	if now > b.at {
		b.tokens = min(b.tokens+float64(now-b.at)*rate/1e9, float64(burst))
		b.at = now
	}
	b.tokens--
	switch {
	case b.tokens >= 0:
		return frameAllowed
	case b.tokens >= -max(rate, 10):
		return frameRefused
	default:
		return frameTooMany
	}
}
