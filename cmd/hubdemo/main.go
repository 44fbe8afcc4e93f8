// Command hubdemo posts realistic IM callbacks to a running hub through its
// real callback endpoint, so a newcomer sees a lively dashboard: group
// messages of every element type, topic groups, recalls of recent messages,
// one-to-one messages and their withdrawals. It stops after -duration.
//
//	hubdemo -url http://127.0.0.1:8080 -app 1400000000 -rate 5
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imhub/imhub/callback"
)

func main() {
	var (
		base     = flag.String("url", "http://127.0.0.1:8080", "the hub's base URL")
		app      = flag.String("app", "1400000000", "SdkAppid")
		token    = flag.String("token", "", "the app's callback token, if it has one")
		rate     = flag.Float64("rate", 5, "callbacks per second")
		duration = flag.Duration("duration", 10*time.Minute, "stop after this long")
		count    = flag.Int("n", 0, "stop after this many callbacks (0: no limit)")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	if err := run(ctx, *base, *app, *token, *rate, *count, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hubdemo: "+err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, base, app, token string, rate float64, count int, out io.Writer) error {
	if rate <= 0 {
		return errors.New("-rate must be positive")
	}
	g := newGenerator(rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)))
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	client := &http.Client{Timeout: 10 * time.Second}
	sent, failed := 0, 0
	defer func() { fmt.Fprintf(out, "hubdemo: %d callbacks posted, %d refused\n", sent, failed) }()
	for count == 0 || sent+failed < count {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		cmd, body := g.next(time.Now())
		q := url.Values{"SdkAppid": {app}, "CallbackCommand": {cmd}, "contenttype": {"json"},
			"ClientIP": {"10.0.0." + strconv.Itoa(1+g.r.IntN(250))}, "OptPlatform": {pick(g.r, platforms)}}
		if token != "" {
			rt := strconv.FormatInt(time.Now().Unix(), 10)
			q.Set("RequestTime", rt)
			q.Set("Sign", callback.Sign(token, rt))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/im/callback?"+q.Encode(), strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("post to %s: %w (is the hub running?)", base, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			sent++
		} else {
			failed++
			fmt.Fprintf(out, "hubdemo: %s answered %d %s\n", cmd, resp.StatusCode, b)
		}
	}
	return nil
}
