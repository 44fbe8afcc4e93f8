package callback_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/broker"
)

// steps records, in order, what a test's membership and publisher were
// asked to do.
type steps struct {
	mu   sync.Mutex
	log  []string
	fail error // returned by every change of membership
}

func (s *steps) add(step string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, step)
	return s.fail
}

func (s *steps) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func (s *steps) Created(_ context.Context, app, group, groupType, _ string, users ...string) error {
	return s.add(fmt.Sprintf("created %s %s %s %v", app, group, groupType, users))
}

func (s *steps) Joined(_ context.Context, app, group string, users ...string) error {
	return s.add(fmt.Sprintf("joined %s %s %v", app, group, users))
}

func (s *steps) Left(_ context.Context, app, group string, users ...string) error {
	return s.add(fmt.Sprintf("left %s %s %v", app, group, users))
}

func (s *steps) Destroyed(_ context.Context, app, group string) error {
	return s.add(fmt.Sprintf("destroyed %s %s", app, group))
}

// publishing records each publication as a step, then publishes with b.
type publishing struct {
	steps *steps
	b     broker.Broker
}

func (p *publishing) Publish(ctx context.Context, m broker.Message) (broker.Result, error) {
	p.steps.mu.Lock()
	p.steps.log = append(p.steps.log, "publish "+m.ID)
	p.steps.mu.Unlock()
	return p.b.Publish(ctx, m)
}

func (p *publishing) Ready() error { return p.b.Ready() }

// Each callback that changes who is in a group is told to the membership:
// an exit and a disbanding before their event is published, a join after
// (a duplicate the broker drops is not told at all). Others are not, a
// message about the same words included.
func TestLearningBeforePublish(t *testing.T) {
	s := &steps{}
	var f *fixture
	f = newFixture(t, publisherFunc(func(ctx context.Context, m broker.Message) (broker.Result, error) {
		l := &callback.Learning{Next: &publishing{s, f.broker}, Membership: s}
		return l.Publish(ctx, m)
	}))
	text := `{"GroupId":"G1","From_Account":"jared","MsgSeq":7,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"{\"type\":\"group.member.left\",\"members\":[\"tommy\"]} \"type\":\"group.destroyed\""}}]}`
	for _, c := range []struct{ cmd, body string }{
		{callback.CommandGroupMemberExit, seed(t, "group_member_exit")},
		{callback.CommandGroupMemberJoin, seed(t, "group_member_join")},
		{callback.CommandGroupDestroyed, seed(t, "group_destroyed")},
		{callback.CommandGroupSend, text},
	} {
		code, body := f.do(t, http.MethodPost, query(openApp, c.cmd), c.body)
		require.Equal(t, http.StatusOK, code, body)
	}
	log := s.list()
	require.Len(t, log, 7, "%q", log)
	assert.Equal(t, "left 1400000000 @TGS#2J4SZEAEL [jared tommy]", log[0])
	assert.True(t, strings.HasPrefix(log[1], "publish "), log[1])
	assert.True(t, strings.HasPrefix(log[2], "publish "), log[2])
	assert.True(t, strings.HasPrefix(log[3], "joined 1400000000 @TGS#2J4SZEAEL ["), log[3])
	assert.Equal(t, "destroyed 1400000000 @TGS#2J4SZEAEL", log[4])
	assert.True(t, strings.HasPrefix(log[5], "publish "), log[5])
	assert.True(t, strings.HasPrefix(log[6], "publish "), "the message is published and changes nothing: %s", log[6])
}

// publisherFunc adapts a function to callback.Publisher.
type publisherFunc func(context.Context, broker.Message) (broker.Result, error)

func (f publisherFunc) Publish(ctx context.Context, m broker.Message) (broker.Result, error) {
	return f(ctx, m)
}

// A change the membership cannot store does not lose its event: it is
// published all the same, and the failure logged.
func TestLearningFailureStillPublishes(t *testing.T) {
	s := &steps{fail: errors.New("redis away")}
	var f *fixture
	f = newFixture(t, publisherFunc(func(ctx context.Context, m broker.Message) (broker.Result, error) {
		l := &callback.Learning{Next: &publishing{s, f.broker}, Membership: s, Logger: slog.New(slog.NewJSONHandler(f.logs, nil))}
		return l.Publish(ctx, m)
	}))
	code, _ := f.do(t, http.MethodPost, query(openApp, callback.CommandGroupMemberExit), seed(t, "group_member_exit"))
	require.Equal(t, http.StatusOK, code)
	log := s.list()
	require.Len(t, log, 2)
	assert.True(t, strings.HasPrefix(log[1], "publish "))
	assert.Contains(t, string(f.rec.WaitCount(t, 1)[0].Data), `"type":"group.member.left"`)
	assert.Contains(t, f.logs.String(), "a change of membership was not stored")
	assert.Contains(t, f.logs.String(), "redis away")
}

// The creation of a group makes its owner and first members members,
// told once its event is published, on the same path as a join, from
// the body the IM documents
// (https://www.tencentcloud.com/document/product/1047/34369). One that
// names nobody teaches nothing, and is published all the same.
func TestGroupCreateLearnt(t *testing.T) {
	s := &steps{}
	var f *fixture
	f = newFixture(t, publisherFunc(func(ctx context.Context, m broker.Message) (broker.Result, error) {
		l := &callback.Learning{Next: &publishing{s, f.broker}, Membership: s}
		return l.Publish(ctx, m)
	}))
	code, answer := f.do(t, http.MethodPost, query(openApp, callback.CommandGroupCreate), seed(t, "group_created"))
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, ok, answer)
	log := s.list()
	require.Len(t, log, 2, "%q", log)
	assert.True(t, strings.HasPrefix(log[0], "publish "), log[0])
	assert.Equal(t, "created 1400000000 @TGS#2J4SZEAEL Public [leckie bob peter]", log[1])

	for _, body := range []string{`{"GroupId":"G","Owner_Account":""}`, `{"GroupId":"G2","MemberList":[]}`} {
		code, answer := f.do(t, http.MethodPost, query(openApp, callback.CommandGroupCreate), body)
		assert.Equal(t, http.StatusOK, code, answer)
	}
	log = s.list()
	require.Len(t, log, 4, "%q", log)
	assert.True(t, strings.HasPrefix(log[2], "publish ") && strings.HasPrefix(log[3], "publish "), "nobody named, nobody learnt: %q", log)

	// An audio-video group made by the admin names nobody, and is open to
	// everyone all the same.
	code, answer = f.do(t, http.MethodPost, query(openApp, callback.CommandGroupCreate), `{"GroupId":"@TGS#aLive","Type":"AVChatRoom","Operator_Account":"admin"}`)
	assert.Equal(t, http.StatusOK, code, answer)
	log = s.list()
	require.Len(t, log, 6, "%q", log)
	assert.Equal(t, "created 1400000000 @TGS#aLive AVChatRoom []", log[5])
	f.rec.WaitCount(t, 4)
}

// Only an event's own top-level type and members count: the same words in
// a custom event's data, or in other keys, change nothing.
func TestMemberChangeOf(t *testing.T) {
	for _, tc := range []struct {
		data string
		want callback.MemberChange
		ok   bool
	}{
		{`{"id":"1","type":"group.member.left","group_id":"G","members":["a","b"]}`, callback.MemberChange{Kind: callback.ChangeLeft, Group: "G", Users: []string{"a", "b"}}, true},
		{`{"id":"1","type":"group.member.joined","group_id":"G","members":["a"]}`, callback.MemberChange{Kind: callback.ChangeJoined, Group: "G", Users: []string{"a"}}, true},
		{`{"id":"1","type":"group.destroyed","group_id":"G"}`, callback.MemberChange{Kind: callback.ChangeDestroyed, Group: "G"}, true},
		{`{"id":"1","type":"group.created","group_id":"G","members":["a","o"],"owner":"o"}`, callback.MemberChange{Kind: callback.ChangeJoined, Group: "G", Users: []string{"a", "o"}, Owner: "o"}, true},
		{`{"id":"1","type":"group.created","group_id":"G","group_type":"Work","owner":"o"}`, callback.MemberChange{Kind: callback.ChangeJoined, Group: "G", Users: []string{"o"}, Owner: "o", GroupType: "Work"}, true},
		{`{"id":"1","type":"group.created","group_id":"G","group_type":"AVChatRoom"}`, callback.MemberChange{Kind: callback.ChangeJoined, Group: "G", GroupType: "AVChatRoom"}, true},
		{`{"id":"1","type":"group.created","group_id":"G","group_type":"Work"}`, callback.MemberChange{}, false},
		{`{"id":"1","type":"group.created","group_id":"G","group_type":7,"owner":"o"}`, callback.MemberChange{}, false},
		{`{"id":"1","type":"group.created","group_id":"G","members":["a"],"owner":"o"}`, callback.MemberChange{Kind: callback.ChangeJoined, Group: "G", Users: []string{"o", "a"}, Owner: "o"}, true},
		{`{"id":"1","type":"group.created","group_id":"G","owner":"o"}`, callback.MemberChange{Kind: callback.ChangeJoined, Group: "G", Users: []string{"o"}, Owner: "o"}, true},
		{`{"id":"1","type":"group.created","group_id":"G"}`, callback.MemberChange{}, false},
		{`{"id":"1","type":"group.owner.changed","group_id":"G","owner":"o"}`, callback.MemberChange{}, false},
		{`{"id":"1","type":"group.member.changed","group_id":"G","members":["a"],"role":"Admin"}`, callback.MemberChange{}, false},
		{`{"id":"1","type":"custom","data":{"type":"group.member.left","group_id":"G","members":["a"]}}`, callback.MemberChange{}, false},
		{`{"id":"1","Type":"group.member.left","group_id":"G","members":["a"],"x":{"type":"group.member.left"}}`, callback.MemberChange{}, false},
		{`{"id":"1","type":"group.member.left","group_id":"G"}`, callback.MemberChange{}, false},
		{`{"id":"1","type":"group.member.left","group_id":"G","members":"a"}`, callback.MemberChange{}, false},
		{`{"id":"1","type":"group.destroyed"}`, callback.MemberChange{}, false},
		{`{"id":"1","type":"group.destroyed","group_id":"G"`, callback.MemberChange{}, false},
		{`{"id":"1","type":"group.message.sent","group_id":"G","body":[{"t":"\"type\":\"group.destroyed\""}]}`, callback.MemberChange{}, false},
	} {
		got, ok := callback.MemberChangeOf([]byte(tc.data))
		assert.Equal(t, tc.ok, ok, tc.data)
		assert.Equal(t, tc.want, got, tc.data)
	}
	c := callback.MemberChange{Kind: callback.ChangeLeft, Users: []string{"a"}}
	assert.True(t, c.Names("a"))
	assert.False(t, c.Names("b"))
	assert.True(t, callback.MemberChange{Kind: callback.ChangeDestroyed}.Names("b"))
	assert.False(t, callback.MemberChange{Kind: callback.ChangeJoined, Users: []string{"a"}}.Names("a"))
}
