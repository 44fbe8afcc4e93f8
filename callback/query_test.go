package callback

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

var queryCases = []string{
	"", "SdkAppid=1&CallbackCommand=Group.CallbackAfterSendMsg&contenttype=json&ClientIP=127.0.0.1&OptPlatform=Web",
	"SdkAppid=1&SdkAppid=2", "SdkAppid=%ZZ&SdkAppid=2", "SdkAppid=&SdkAppid=2", "SdkAppid", "SdkAppid&SdkAppid=2",
	"Sdk%41ppid=3", "SdkAppid=a+b%20c", "SdkAppid=1;x&SdkAppid=2", "a=1;SdkAppid=1", "&&SdkAppid=1&&", "=1&SdkAppid==2",
	"%ZZ=1&SdkAppid=1", "Sign=%C3%28&RequestTime=%2B1", "CallbackCommand=%ED%A0%80", "OptPlatform=%&OptPlatform=Web",
	"SdkAppid=1&" + strings.Repeat("x=1&", maxQuickParams) + "SdkAppid=2",
	strings.Repeat("x=1&", 20000) + "SdkAppid=2",
}

// readQuery gives what url.Values.Get gives for every parameter it reads.
func TestReadQueryMatchesURL(t *testing.T) {
	for _, raw := range queryCases {
		checkQuery(t, raw)
	}
}

func FuzzReadQuery(f *testing.F) {
	for _, raw := range queryCases {
		if len(raw) < 1000 {
			f.Add(raw)
		}
	}
	f.Fuzz(checkQuery)
}

func checkQuery(t *testing.T, raw string) {
	v, _ := url.ParseQuery(raw)
	want := query{app: v.Get("SdkAppid"), command: v.Get("CallbackCommand"), clientIP: v.Get("ClientIP"),
		platform: v.Get("OptPlatform"), requestTime: v.Get("RequestTime"), sign: v.Get("Sign")}
	assert.Equal(t, want, readQuery(raw), "query %.100q", raw)
}
