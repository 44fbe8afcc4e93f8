package callback_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/broker"
)

func BenchmarkParseEncode(b *testing.B) {
	body, err := os.ReadFile("testdata/golden/group_send.json")
	if err != nil {
		b.Fatal(err)
	}
	req := callback.Request{App: "1400000000", Command: callback.CommandGroupSend, Received: time.Now()}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ev, _, err := callback.Parse(req, body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ev.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandler is one whole callback: HTTP request parsing aside, the
// checks, parse, encode and an in-process publish with dedupe.
func BenchmarkHandler(b *testing.B) {
	body, err := os.ReadFile("testdata/golden/group_send.json")
	if err != nil {
		b.Fatal(err)
	}
	// Dedupe off: every iteration repeats one event.
	pub := broker.NewMemory(broker.Config{HistorySize: 100, HistoryTTL: time.Minute})
	h := callback.NewHandler(callback.Config{
		Apps:   []callback.App{{ID: "1400000000"}},
		Logger: slog.New(slog.DiscardHandler),
	}, pub)
	target := "/im/callback?SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterSendMsg&contenttype=json"
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, target, strings.NewReader(string(body)))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
