package callback

import (
	"slices"
	"strconv"
	"strings"
)

// The callbacks after a community group's topics were created, changed or
// ended. Each goes to the group's channel, where its members listen.

// topicCreated is Group.CallbackAfterCreateTopic.
//
// Identity: the group, the topic and EventTime when given (see
// topicTime).
func (f fields) topicCreated() (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	topic, err := f.id("TopicId")
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:      TypeTopicCreated,
		GroupID:   group,
		GroupType: f.optString("Type"),
		TopicID:   topic,
		Operator:  f.optString("Operator_Account"),
		Name:      f.optString("Name"),
	}
	return ev, group + "\x00" + topic + "\x00" + f.topicTime(), nil
}

// topicTime is the EventTime part of a topic's creation's or end's
// identity, as occurrence gives it, but nothing when the IM sent none (its
// pages' examples have none): a topic is created once and ended once, so
// a second callback of the same topics says nothing new, and is a retry.
// Only a topic id the app chose, ended and made again within the dedupe
// window, would be taken for one.
func (f fields) topicTime() string {
	if t, ok := f.millis("EventTime"); ok && t > 0 {
		return "t" + strconv.FormatInt(t, 10)
	}
	return ""
}

// topicDestroyed is Group.CallbackAfterTopicDestroyed: TopicIdList, the
// topics ended at once.
//
// Identity: the group, the topics (in any order) and EventTime when given
// (see topicTime).
func (f fields) topicDestroyed() (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	const name = "TopicIdList"
	raw, ok := f.get(name)
	if !ok {
		return nil, "", badRequest("%s: required non-empty array is missing", name)
	}
	if raw[0] != '[' {
		return nil, "", badRequest("%s: want array of strings, got %s", name, kind(raw))
	}
	entries := splitArray(raw)
	if len(entries) == 0 {
		return nil, "", badRequest("%s: required non-empty array is missing", name)
	}
	if err := tooLong(name, len(entries), "topics"); err != nil {
		return nil, "", err
	}
	topics := make([]string, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		topic, ok := str(e)
		switch {
		case !ok:
			return nil, "", badRequest("%s[%d]: want string, got %s", name, i, kind(e))
		case topic == "":
			return nil, "", badRequest("%s[%d]: must not be empty", name, i)
		case len(topic) > maxIDLen:
			return nil, "", badRequest("%s[%d]: longer than %d bytes", name, i, maxIDLen)
		}
		if !seen[topic] {
			seen[topic] = true
			topics = append(topics, topic)
		}
	}
	ev := &Event{
		Type:      TypeTopicDestroyed,
		GroupID:   group,
		GroupType: f.optString("Type"),
		Operator:  f.optString("Operator_Account"),
		TopicIDs:  topics,
	}
	sorted := slices.Sorted(slices.Values(topics))
	return ev, group + "\x00" + strings.Join(sorted, "\x00") + "\x00" + f.topicTime(), nil
}

// topicChanged is Group.CallbackAfterTopicInfoChanged: as a group's
// profile change, only the fields that changed, in Changes, and the new
// name in Name too. The page's example names no topic; TopicId is taken
// when the IM sends it.
//
// Identity: as a group's profile change (changeIdentity), with the topic.
func (f fields) topicChanged(req Request) (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	topic, err := f.optID("TopicId")
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:      TypeTopicChanged,
		GroupID:   group,
		GroupType: f.optString("Type"),
		TopicID:   topic,
		Operator:  f.optString("Operator_Account"),
		Name:      f.optString("Name"),
		Changes:   f.profileChanges(),
	}
	return ev, changeIdentity(ev, f.occurrence(req)), nil
}
