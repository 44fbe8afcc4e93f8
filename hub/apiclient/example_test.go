package apiclient_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/imhub/imhub/hub/apiclient"
)

// A backend tells a user their order shipped, retrying with the same
// idempotency key while the hub is unavailable, so that the user gets it
// once.
func Example() {
	c := apiclient.New("http://127.0.0.1:8080", "1400000000", "the app's API key")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		offset, _, err := c.Publish(ctx, "user:jared", map[string]string{"text": "your order shipped"}, "order-1234")
		switch {
		case err == nil:
			fmt.Println("published at", offset)
			return
		case errors.Is(err, apiclient.ErrUnavailable) && ctx.Err() == nil:
			time.Sleep(time.Second)
		default:
			fmt.Println("not published:", err)
			return
		}
	}
}
