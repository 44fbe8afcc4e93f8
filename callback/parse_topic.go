package callback

import (
	"slices"
	"strings"
)

// The callbacks after a community group's topics were created, changed or
// ended. Each goes to the group's channel, where its members listen.

// topicCreated is Group.CallbackAfterCreateTopic.
//
// Identity: the group, the topic and EventTime (see occurrence): a topic
// id the app chose may be used again once the topic is ended.
func (f fields) topicCreated(req Request) (*Event, string, error) {
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
	return ev, group + "\x00" + topic + "\x00" + f.occurrence(req), nil
}

// topicDestroyed is Group.CallbackAfterTopicDestroyed: TopicIdList, the
// topics ended at once.
//
// Identity: the group, the topics (in any order) and EventTime (see
// occurrence).
func (f fields) topicDestroyed(req Request) (*Event, string, error) {
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
	topics := make([]string, 0, len(entries))
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
		if !slices.Contains(topics, topic) {
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
	return ev, group + "\x00" + strings.Join(sorted, "\x00") + "\x00" + f.occurrence(req), nil
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
