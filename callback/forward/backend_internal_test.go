package forward

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
)

// The query an attempt is posted with: the operator's, then the
// callback's in its order, every value as the hub read it, re-encoded so
// that nothing of it is taken for a fragment or a path.
func TestBackendURL(t *testing.T) {
	now := time.Unix(1796000000, 0)
	rt := "1796000000"
	sign := callback.Sign("tok", rt)
	for _, tc := range []struct {
		name, target, token, query, want string
	}{
		{"as it came", "https://b.example/im", "", "SdkAppid=1&CallbackCommand=C.X&contenttype=json",
			"https://b.example/im?SdkAppid=1&CallbackCommand=C.X&contenttype=json"},
		{"raw hash", "https://b.example/im", "", "SdkAppid=1&GroupId=@TGS#2J&CallbackCommand=C.X",
			"https://b.example/im?SdkAppid=1&GroupId=%40TGS%232J&CallbackCommand=C.X"},
		{"escaped hash stays a value", "https://b.example/im", "", "GroupId=%40TGS%232J&A=b+c",
			"https://b.example/im?GroupId=%40TGS%232J&A=b+c"},
		{"raw question mark and slash", "https://b.example/im", "", "a=?/x&b=1",
			"https://b.example/im?a=%3F%2Fx&b=1"},
		{"what does not decode is dropped", "https://b.example/im", "", "a=%zz&b=1&c;d=2&&=3&e",
			"https://b.example/im?b=1&e="},
		{"operator's query first", "https://u:p@b.example/im?via=hub&x=%2F", "", "SdkAppid=1",
			"https://u:p@b.example/im?via=hub&x=%2F&SdkAppid=1"},
		{"signed afresh in place", "https://b.example/im", "tok", "SdkAppid=1&RequestTime=1&Sign=old&CallbackCommand=C.X",
			"https://b.example/im?SdkAppid=1&RequestTime=" + rt + "&Sign=" + sign + "&CallbackCommand=C.X"},
		{"signed when unsigned", "https://b.example/im", "tok", "SdkAppid=1#x",
			"https://b.example/im?SdkAppid=1%23x&RequestTime=" + rt + "&Sign=" + sign},
		{"every copy signed", "https://b.example/im", "tok", "Sign=a&Sign=b&RequestTime=1",
			"https://b.example/im?Sign=" + sign + "&Sign=" + sign + "&RequestTime=" + rt},
		{"the operator's own are left", "https://b.example/im?Sign=op", "tok", "SdkAppid=1",
			"https://b.example/im?Sign=op&SdkAppid=1&RequestTime=" + rt + "&Sign=" + sign},
		{"fragment of the target dropped", "https://b.example/im#frag", "", "a=1",
			"https://b.example/im?a=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(Target{App: "1", URL: tc.target, Token: tc.token})
			require.NoError(t, b.err)
			got := b.url(tc.query, now)
			assert.Equal(t, tc.want, got.String())
			again, err := url.Parse(got.String())
			require.NoError(t, err)
			assert.Empty(t, again.Fragment, "nothing is taken for a fragment")
			assert.Equal(t, got.RawQuery, again.RawQuery)
		})
	}
}

// A target the forwarder cannot post to fails each attempt with an error
// that names it without its credentials.
func TestBackendBadURL(t *testing.T) {
	for _, raw := range []string{"http://u:s3cret@b.example/%zz?k=s3cret", "ftp://u:s3cret@b.example/?k=s3cret", "/cb?k=s3cret"} {
		b := newBackend(Target{App: "1", URL: raw})
		require.Error(t, b.err, raw)
		assert.NotContains(t, b.err.Error(), "s3cret", raw)
	}
}

// A dead letter's query is shown without any Sign, however it is spelt
// in the raw query, and with nothing else lost.
func TestWithoutSign(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{"SdkAppid=1&CallbackCommand=C.X&RequestTime=5&Sign=abc", "SdkAppid=1&CallbackCommand=C.X&RequestTime=5"},
		{"Sign=a&Sign=b&x=1", "x=1"},
		{"Si%67n=secret&x=1", "x=1"},
		{"x=a+b&y=%23&Sign=s", "x=a+b&y=%23"},
		{"OptPlatform=Web#2&Sign=s", "OptPlatform=Web%232"},
		{"Sign", ""},
		{"", ""},
		{"x=%zz&Sign=s&y=1", "y=1"},
	} {
		assert.Equal(t, c.want, WithoutSign(c.raw), "raw %q", c.raw)
	}
}
