package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/imhub/imhub/callback"
)

// appSecret is one item of a SdkAppid:secret,… flag.
type appSecret struct{ app, secret string }

// secretList is how a flag of SdkAppid:secret,… items is read: its name
// for messages, the shape of an item ("SdkAppid:key"), and what is wrong
// with one app's secret ("" when nothing).
type secretList struct {
	flag  string
	shape string
	check func(app, secret string) string
}

// parse reads spec, a comma-separated list whose blank items are skipped,
// each item of an app in apps. Its errors never show a secret: an item
// without ':' may be a secret given alone, and what stands before a
// ':' that is not a SdkAppid may be part of one.
func (l secretList) parse(spec string, apps []callback.App) ([]appSecret, error) {
	known := map[string]bool{}
	for _, app := range apps {
		known[app.ID] = true
	}
	var list []appSecret
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		app, secret, ok := strings.Cut(item, ":")
		switch {
		case !ok:
			return nil, fmt.Errorf("%s: an entry is not %s; want %s,…", l.flag, l.shape, l.shape)
		case !isAppID(app):
			return nil, fmt.Errorf("%s: an entry does not start with a SdkAppid; want %s,…", l.flag, l.shape)
		case !known[app]:
			return nil, fmt.Errorf("%s: app %s is not one of -apps", l.flag, app)
		}
		if msg := l.check(app, secret); msg != "" {
			return nil, errors.New(l.flag + ": " + msg)
		}
		list = append(list, appSecret{app, secret})
	}
	return list, nil
}
