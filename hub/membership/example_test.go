package membership_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"

	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/imstub"
)

// A Checker asks the IM once and answers by what it keeps; the callbacks
// keep it current.
func Example() {
	// A stand-in for the IM's REST API, with one group.
	stub := imstub.New(map[string][]byte{"1400000000": []byte("the app's secret key")}, "administrator")
	stub.CreateGroup("1400000000", "@TGS#2J4SZEAEL", "Public", "leckie", "peter")
	srv := httptest.NewServer(stub)
	defer srv.Close()

	im, err := imapi.New(imapi.Config{BaseURL: srv.URL, Keys: map[string][]byte{"1400000000": []byte("the app's secret key")}})
	if err != nil {
		log.Fatal(err)
	}
	// Config.Redis shares the answers between nodes; without it they are
	// kept in this process.
	c, err := membership.NewChecker(membership.Config{IM: im})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	v, _ := c.Check(ctx, "1400000000", "@TGS#2J4SZEAEL", "peter")
	fmt.Println("peter:", v)
	// Group.CallbackAfterMemberExit, before its event is published.
	_ = c.Left(ctx, "1400000000", "@TGS#2J4SZEAEL", "peter")
	v, _ = c.Check(ctx, "1400000000", "@TGS#2J4SZEAEL", "peter")
	fmt.Println("peter, after leaving:", v)
	calls, _ := stub.Calls("1400000000", "@TGS#2J4SZEAEL")
	fmt.Println("calls of the IM:", calls)
	// Output:
	// peter: member
	// peter, after leaving: not member
	// calls of the IM: 1
}
