package broker

// replayAfter decides what a client that last saw since gets, given the
// channel's latest position and the publications history holds (oldest
// first, contiguous): every publication after since if history reaches
// back to it, else nothing and false.
func replayAfter(since, latest Position, held []Publication) ([]Publication, bool) {
	if since.Epoch == "" && since.Offset == 0 {
		since.Epoch = latest.Epoch // from the start of the current epoch
	}
	switch {
	case since.Epoch != latest.Epoch, since.Offset > latest.Offset:
		return nil, false
	case since.Offset == latest.Offset:
		return nil, true
	}
	first := latest.Offset + 1 // oldest held offset
	if len(held) > 0 {
		first = held[0].Offset
	}
	if first > since.Offset+1 {
		return nil, false
	}
	var out []Publication
	for _, p := range held {
		if p.Offset > since.Offset {
			out = append(out, p)
		}
	}
	return out, true
}
