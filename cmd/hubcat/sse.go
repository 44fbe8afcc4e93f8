package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/imhub/imhub/internal/sse"
)

// streamURL is the /sse URL of o's channels: -url as given, or the -dev
// hub's.
func (o options) streamURL() (string, error) {
	base := o.url
	if base == "" {
		base = strings.TrimSuffix(o.dev, "/") + "/sse"
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("-url: %w", err)
	}
	q := u.Query()
	for ch := range strings.SplitSeq(o.subs, ",") {
		if ch = strings.TrimSpace(ch); ch != "" {
			q.Add("channel", ch)
		}
	}
	if len(q["channel"]) == 0 {
		return "", errors.New("-sse needs the channels to stream: -subscribe group:G1,user:jared")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// tailStream prints the frames of o's /sse stream, one JSON line each,
// and, as EventSource does, opens it again from the last id when the hub
// ends it (a drain, a reader too slow): it returns on a refusal, at -n
// events, or when ctx ends.
func tailStream(ctx context.Context, o options, out io.Writer) error {
	u, err := o.streamURL()
	if err != nil {
		return err
	}
	o.url = u
	streamURL, header, err := o.dial()
	if err != nil {
		return err
	}
	last, events := "", 0
	for {
		var done bool
		last, events, done, err = readStream(ctx, streamURL, header, last, events, o.count, out)
		if err != nil || done || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// readStream reads one response of the stream from id last on, printing
// its frames; it reports the last id, the events so far, and whether to
// stop (-n reached).
func readStream(ctx context.Context, streamURL string, header http.Header, last string, events, count int, out io.Writer) (string, int, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, streamURL, nil)
	if err != nil {
		return last, events, false, fmt.Errorf("stream request: %w", err)
	}
	req.Header = header.Clone()
	req.Header.Set("Accept", "text/event-stream")
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return last, events, true, nil
		}
		return last, events, false, fmt.Errorf("open stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return last, events, false, fmt.Errorf("stream refused: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	r := sse.NewReader(resp.Body)
	for {
		m, err := r.Next()
		if err != nil {
			// The end of a response, or of a broken one: open it again.
			return r.LastID(), events, ctx.Err() != nil, nil
		}
		fmt.Fprintf(out, "%s\n", m.Data)
		last = m.ID
		if closeOf(m) == disconnected {
			return last, events, false, errors.New("disconnected by the server API: not opened again with the same credential")
		}
		if m.Event != "event" {
			continue
		}
		events++
		if count > 0 && events >= count {
			return last, events, true, nil
		}
	}
}

// disconnected is the close code of a stream the server API ended: it is
// not to be opened again with the same credential.
const disconnected = 4010

// closeOf is the close code an error message ends its stream with, 0 for
// one that does not.
func closeOf(m sse.Message) int {
	var f struct {
		Code  string `json:"code"`
		Close int    `json:"close"`
	}
	if m.Event != "error" || json.Unmarshal([]byte(m.Data), &f) != nil || f.Code != "closed" {
		return 0
	}
	return f.Close
}
