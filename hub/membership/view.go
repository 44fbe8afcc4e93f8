package membership

import "context"

// View is one node's view of the IM's membership for the apps whose
// groups follow it (those whose keys the hub holds): the answers of its
// Checker, shared by every node. It is what the hub asks at a subscribe.
type View struct {
	c    *Checker
	apps map[string]bool
}

// NewView returns the view of c for apps.
func NewView(c *Checker, apps ...string) *View {
	v := &View{c: c, apps: make(map[string]bool, len(apps))}
	for _, a := range apps {
		v.apps[a] = true
	}
	return v
}

// Governs reports whether app's groups follow the IM's membership.
func (v *View) Governs(app string) bool { return v.apps[app] }

// Check says whether user is a member of app's group, as Checker.Check
// does.
func (v *View) Check(ctx context.Context, app, group, user string) (Verdict, error) {
	return v.c.Check(ctx, app, group, user)
}
