// Package sse reads a Server-Sent Events stream as the HTML standard's
// EventSource does (https://html.spec.whatwg.org/multipage/server-sent-events.html):
// lines of field: value, a blank line ending each message, comments
// skipped. hubcat tails the hub's /sse with it, and the tests read it.
package sse

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Message is one message of a stream.
type Message struct {
	// Event is the message's name, "message" where it gave none.
	Event string
	// Data is its data lines joined with "\n".
	Data string
	// ID is the last event id once the message is read: its own, or the
	// one before it when it carries none, as EventSource keeps it.
	ID string
	// Retry is the reconnect delay in milliseconds the stream last set,
	// 0 if none.
	Retry int
}

// MaxLine bounds a line of the stream.
const MaxLine = 1 << 20

// Reader reads messages from a stream.
type Reader struct {
	s     *bufio.Scanner
	id    string
	retry int
	// Comments counts the comment lines read, pings among them.
	Comments int
}

// NewReader reads the stream r.
func NewReader(r io.Reader) *Reader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), MaxLine)
	return &Reader{s: s}
}

// Next reads the next message. At the end of the stream it returns
// io.EOF, dropping a message the stream did not finish with a blank line,
// as EventSource does.
func (r *Reader) Next() (Message, error) {
	var m Message
	var data []string
	hasData := false
	for r.s.Scan() {
		line := r.s.Text()
		if line == "" {
			if !hasData {
				m = Message{}
				continue
			}
			m.Data = strings.Join(data, "\n")
			if m.Event == "" {
				m.Event = "message"
			}
			m.ID, m.Retry = r.id, r.retry
			return m, nil
		}
		if line[0] == ':' {
			r.Comments++
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			m.Event = value
		case "data":
			data, hasData = append(data, value), true
		case "id":
			if !strings.ContainsRune(value, 0) {
				r.id = value
			}
		case "retry":
			if n, err := strconv.Atoi(value); err == nil && n >= 0 {
				r.retry = n
			}
		}
	}
	if err := r.s.Err(); err != nil {
		return Message{}, fmt.Errorf("read event stream: %w", err)
	}
	return Message{}, io.EOF
}

// LastID is the last event id the stream set.
func (r *Reader) LastID() string { return r.id }

// Retry is the reconnect delay in milliseconds the stream set, 0 if none.
func (r *Reader) Retry() int { return r.retry }
