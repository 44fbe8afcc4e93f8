package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/imhub/imhub/callback"
)

// demoConfig is what run posts, where, and how fast.
type demoConfig struct {
	Base  string  // the hub's base URL
	App   string  // SdkAppid
	Token string  // the app's callback token; "" signs nothing
	Rate  float64 // callbacks a second
	Count int     // callbacks to post; 0: until ctx is done
	// PageUser is the user the dashboard signs in to the IM as, kicked
	// from a group now and then and invited back; "" for none.
	PageUser string
}

// run posts callbacks to the hub at cfg.Base, cfg.Rate a second, until ctx
// is done or cfg.Count have been posted, and reports to out.
func run(ctx context.Context, cfg demoConfig, out io.Writer) error {
	base, app, token, count := cfg.Base, cfg.App, cfg.Token, cfg.Count
	if cfg.Rate <= 0 {
		return errors.New("-rate must be positive")
	}
	g := newGenerator(rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)), cfg.PageUser)
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	client := &http.Client{Timeout: 10 * time.Second}
	sent, failed, allowed, denied := 0, 0, 0, 0
	defer func() {
		fmt.Fprintf(out, "hubdemo: %d callbacks posted, %d refused; group messages checked first: %d allowed, %d not\n",
			sent, failed, allowed, denied)
	}()
	for count == 0 || sent+failed < count {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		c := g.next(time.Now())
		status, answer, err := post(ctx, client, base, app, token, c, g.r)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if status == http.StatusOK {
			sent++
			if c.note != "" {
				fmt.Fprintf(out, "hubdemo: %s\n", c.note)
			}
		} else {
			failed++
			fmt.Fprintf(out, "hubdemo: %s answered %d %s\n", c.cmd, status, answer)
		}
		if strings.Contains(c.cmd, ".CallbackBefore") {
			ok, text := verdict(status, answer)
			if ok {
				allowed++
			} else {
				denied++
			}
			g.verdict(ok)
			m, _ := decodeBody([]byte(c.body))
			fmt.Fprintf(out, "hubdemo: %s %s: %s\n", c.cmd, summarize(c.cmd, m), text)
		}
	}
	return nil
}

// post sends one callback as the IM does, signed when there is a token,
// and returns the hub's status and body.
func post(ctx context.Context, client *http.Client, base, app, token string, c call, r *rand.Rand) (int, []byte, error) {
	q := url.Values{"SdkAppid": {app}, "CallbackCommand": {c.cmd}, "contenttype": {"json"},
		"ClientIP": {"10.0.0." + strconv.Itoa(1+r.IntN(250))}, "OptPlatform": {pick(r, platforms)}}
	if token != "" {
		rt := strconv.FormatInt(time.Now().Unix(), 10)
		q.Set("RequestTime", rt)
		q.Set("Sign", callback.Sign(token, rt))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/im/callback?"+q.Encode(), strings.NewReader(c.body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("post to %s: %w (is the hub running?)", base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, fmt.Errorf("read the answer of %s: %w", base, err)
	}
	return resp.StatusCode, b, nil
}

// verdict reads the answer to a Before callback as the IM does: ErrorCode
// 0 lets the operation go ahead, 1 refuses it, 2 discards it silently. An
// answer with no verdict in it is taken as the IM takes a backend that does
// not answer in time: the operation goes ahead.
func verdict(status int, body []byte) (allow bool, text string) {
	var a answer
	if status != http.StatusOK || json.Unmarshal(body, &a) != nil {
		return true, fmt.Sprintf("allowed (no verdict in the answer %d %q, so the IM goes ahead)", status, clipText(string(body)))
	}
	switch a.ErrorCode {
	case verdictAllow:
		return true, "allowed"
	case verdictDiscard:
		return false, "discarded silently (ErrorCode 2)"
	default:
		return false, fmt.Sprintf("denied (ErrorCode %d %q)", a.ErrorCode, clipText(a.ErrorInfo))
	}
}
