package callback_test

import (
	"fmt"
	"time"

	"github.com/imhub/imhub/callback"
)

func ExampleParse() {
	body := []byte(`{
		"CallbackCommand": "C2C.CallbackAfterMsgWithDraw",
		"From_Account": "jared",
		"To_Account": "Jonh",
		"MsgKey": "48374_2837546_1557481126",
		"UnreadMsgNum": 7
	}`)
	req := callback.Request{App: "1400000000", Command: callback.CommandC2CWithdraw, Received: time.UnixMilli(1700000000000)}
	ev, channels, err := callback.Parse(req, body)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ev.Type, *ev.Unread, channels)
	// Output: c2c.message.recalled 7 [user:jared user:Jonh app]
}

func ExampleSign() {
	// The IM backend signs each callback with the app's callback token.
	fmt.Println(callback.Sign("token", "1700000000"))
	fmt.Println(callback.VerifySign("token", "1700000000", callback.Sign("token", "1700000000"), time.Unix(1700000030, 0)))
	// Output:
	// 37eae3074c8d2bad93ac66b5257e151e605386c2bcc1472988fcb687e7ffa4c6
	// <nil>
}
