package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imhub/imhub/internal/hubload"
)

// backendOK is what the backend answers to every callback: the IM's own
// "delivered" (docs/protocol.md#forwarding).
const backendOK = `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`

// backend stands for an app's own backend behind a forwarding hub: an
// HTTP server on loopback that answers every callback OK and counts what it
// receives. A callback is known by the MsgSeq in its body, which the
// publisher makes unique within the process; Before* callbacks are only
// counted. The hub delivers at least once, so the same MsgSeq may come more
// than once: those are counted as repeats.
type backend struct {
	url string
	srv *http.Server
	// done is closed when Serve returns; close waits for it.
	done chan struct{}

	requests atomic.Int64 // every request
	before   atomic.Int64 // *.CallbackBefore* requests
	unknown  atomic.Int64 // requests with no MsgSeq in the body
	// down has every request answered 503 and not counted.
	down atomic.Bool

	mu      sync.Mutex
	got     map[int64]int      // times each MsgSeq was received
	want    map[int64]struct{} // MsgSeqs the hub accepted
	missing int64              // in want, not yet in got
}

// startBackend listens on a free loopback port and serves until close.
func startBackend() (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{
		url:  "http://" + ln.Addr().String() + "/",
		done: make(chan struct{}),
		got:  map[int64]int{},
		want: map[int64]struct{}{},
	}
	b.srv = &http.Server{
		Handler:           http.HandlerFunc(b.serve),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(ln)
	}()
	return b, nil
}

// close stops the server and waits for it; requests in flight are
// abandoned.
func (b *backend) close() {
	_ = b.srv.Close()
	<-b.done
}

var msgSeqMarker = []byte(`"MsgSeq":`)

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read: "+err.Error(), http.StatusBadRequest)
		return
	}
	if b.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	b.requests.Add(1)
	switch at := bytes.Index(body, msgSeqMarker); {
	case strings.Contains(r.URL.Query().Get("CallbackCommand"), ".CallbackBefore"):
		b.before.Add(1)
	case at < 0:
		b.unknown.Add(1)
	default:
		b.received(hubload.Number(body[at+len(msgSeqMarker):]))
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, backendOK)
}

func (b *backend) received(seq int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got[seq]++
	if _, wanted := b.want[seq]; wanted && b.got[seq] == 1 {
		b.missing--
	}
}

// expect records that the hub accepted the callback with this MsgSeq, so
// the backend must receive it. It may have received it already: the hub
// can forward before its answer reaches the sender.
func (b *backend) expect(seq int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.want[seq]; dup {
		return
	}
	b.want[seq] = struct{}{}
	if b.got[seq] == 0 {
		b.missing++
	}
}

// counts is what the backend has seen so far.
type counts struct {
	accepted int64 // callbacks the hub accepted (expect)
	missing  int64 // of those, not received yet
	distinct int64 // distinct MsgSeqs received
	repeats  int64 // MsgSeqs received again
}

func (b *backend) counts() counts {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := counts{accepted: int64(len(b.want)), missing: b.missing, distinct: int64(len(b.got))}
	for _, n := range b.got {
		c.repeats += int64(n - 1)
	}
	return c
}

// waitDrained waits until the backend has received every accepted
// callback, or the deadline passes, or ctx ends, and says how long it took.
func (b *backend) waitDrained(ctx context.Context, deadline time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		b.mu.Lock()
		missing := b.missing
		b.mu.Unlock()
		if missing == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > deadline {
			return time.Since(start), errors.New("backlog not drained in time")
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
