// Package ssetest is an SSE client for tests of the hub's /sse: it opens
// a stream, reads its messages with their frames decoded, and fails the
// test instead of hanging it.
package ssetest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/imhub/imhub/internal/sse"
	"github.com/imhub/imhub/internal/wstest"
)

// Message is one message of a stream with its data decoded as a frame.
type Message struct {
	sse.Message
	Frame wstest.Frame
}

// Stream is one open stream.
type Stream struct {
	t    testing.TB
	Resp *http.Response
	msgs chan Message
	end  chan error // the error the stream ended with, io.EOF at its end
	stop context.CancelFunc
	r    *sse.Reader
}

// Timeout is how long Read waits for a message.
var Timeout = 10 * time.Second

// Open opens the stream at url (http://host/sse?channel=…) with header
// and fails the test unless it is answered 200. The stream is closed when
// the test ends.
func Open(t testing.TB, url string, header http.Header) *Stream {
	t.Helper()
	s, status, body := TryOpen(t, url, header)
	if s == nil {
		t.Fatalf("open %s: %d %s", url, status, body)
	}
	return s
}

// TryOpen opens the stream at url; a request answered with another
// status than 200 returns nil, the status and the body.
func TryOpen(t testing.TB, url string, header http.Header) (*Stream, int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		t.Fatalf("request %s: %v", url, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("get %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		cancel()
		return nil, resp.StatusCode, string(b)
	}
	s := &Stream{t: t, Resp: resp, msgs: make(chan Message, 64), end: make(chan error, 1), stop: cancel, r: sse.NewReader(resp.Body)}
	done := make(chan struct{})
	go s.read(done)
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return s, resp.StatusCode, ""
}

func (s *Stream) read(done chan<- struct{}) {
	defer close(done)
	defer close(s.msgs)
	for {
		m, err := s.r.Next()
		if err != nil {
			s.end <- err
			return
		}
		msg := Message{Message: m}
		if err := json.Unmarshal([]byte(m.Data), &msg.Frame); err == nil {
			msg.Frame.Raw = m.Data
		}
		s.msgs <- msg
	}
}

// Close ends the stream from the client's side.
func (s *Stream) Close() {
	s.stop()
	_ = s.Resp.Body.Close()
}

// TryRead reads the next message, or says why there is none: io.EOF at
// the end of the stream, an error once timeout passed.
func (s *Stream) TryRead(timeout time.Duration) (Message, error) {
	select {
	case m, ok := <-s.msgs:
		if !ok {
			err := <-s.end
			s.end <- err // for the next read
			return Message{}, err
		}
		return m, nil
	case <-time.After(timeout):
		return Message{}, errors.New("no message within " + timeout.String())
	}
}

// Read reads the next message, failing the test without one.
func (s *Stream) Read() Message {
	s.t.Helper()
	m, err := s.TryRead(Timeout)
	if err != nil {
		s.t.Fatalf("read stream: %v", err)
	}
	return m
}

// ReadEvent reads the next message and fails the test unless it is
// named name.
func (s *Stream) ReadEvent(name string) Message {
	s.t.Helper()
	m := s.Read()
	if m.Event != name {
		s.t.Fatalf("want a %q message, got %q: %s", name, m.Event, m.Data)
	}
	return m
}

// ExpectEnd reads until the stream ends and returns the messages before
// its end; it fails the test if the stream does not end within Timeout.
func (s *Stream) ExpectEnd() []Message {
	s.t.Helper()
	var got []Message
	deadline := time.Now().Add(Timeout)
	for {
		m, err := s.TryRead(time.Until(deadline))
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			s.t.Fatalf("stream did not end: %v (read %d messages)", err, len(got))
		}
		got = append(got, m)
	}
}
