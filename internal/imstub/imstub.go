// Package imstub is a stand-in for the IM's REST API, for tests and demos
// that cannot reach the IM: it answers get_role_in_group from membership
// it is told of, checks each request as the IM documents it (the query,
// the admin's UserSig, the body's shape), and can be told to fail, to be
// slow or to limit its rate.
//
// Its groups are in a Store: its own memory, or Redis, where the stand-ins
// of several processes share them. It is told of changes by its test, or,
// in a demo hub (hub -dev -dev-im), by the callbacks the hub takes
// (Joined, Left, Destroyed).
//
// What it checks and answers follows the IM's pages: the RESTful API
// overview (https://www.tencentcloud.com/document/product/1047/34620) and
// get_role_in_group (https://www.tencentcloud.com/document/product/1047/34963).
// The error codes of its FAIL answers are the IM's where the pages give
// them (10004 a bad parameter, 10007 an audio-video group, 10010 no such
// group); the rest are in the overview's range of public codes, and the
// hub treats every FAIL alike but 10007.
package imstub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/imhub/imhub/hub/auth"
)

// Error codes the stand-in answers with.
const (
	CodeBadSig      = 70003 // the usersig does not verify for the identifier
	CodeNotAdmin    = 60004 // the identifier is not the app's admin
	CodeUnknownApp  = 60006 // no such sdkappid
	CodeRateLimited = 60011 // over the calls a second it was told to allow
	CodeBadRequest  = 10004
	CodeNoRoles     = 10007
	CodeNoGroup     = 10010
)

// Fault is what the stand-in does to the next calls instead of answering.
type Fault int

// Faults.
const (
	FaultNone    Fault = iota
	FaultError         // a FAIL answer with code 10002 (an internal error)
	FaultHTML          // a 200 whose body is an HTML page
	FaultHTTP          // a 502 from a proxy in front of it
	FaultGarbage       // a 200 of JSON that is not the IM's shape
	FaultHang          // no answer until the caller gives up
)

var faultNames = [...]string{FaultNone: "none", FaultError: "error", FaultHTML: "html", FaultHTTP: "http", FaultGarbage: "garbage", FaultHang: "hang"}

// String is the fault's name, as ParseFault takes it.
func (f Fault) String() string {
	if int(f) < len(faultNames) {
		return faultNames[f]
	}
	return "fault(" + strconv.Itoa(int(f)) + ")"
}

// ParseFault reads a fault's name: none, error, html, http, garbage or
// hang.
func ParseFault(name string) (Fault, error) {
	for f, n := range faultNames {
		if n == name {
			return Fault(f), nil
		}
	}
	return FaultNone, fmt.Errorf("no fault %q: want one of none, error, html, http, garbage, hang", name)
}

// Config configures a Server.
type Config struct {
	// Keys are the apps' secret keys, SdkAppid to key.
	Keys map[string][]byte
	// Admin is the apps' administrator account, the only identifier a
	// call is answered for.
	Admin string
	// Store keeps the groups; default a MemoryStore of the Server's own.
	Store Store
}

// Server is the stand-in, an http.Handler.
type Server struct {
	keys  map[string][]byte
	admin string
	sigs  *auth.UserSigVerifier
	store Store

	mu     sync.Mutex
	fault  Fault
	delay  time.Duration
	limit  *rate.Limiter
	calls  map[string]int // get_role_in_group calls by group
	asked  map[string]int // accounts asked about, by group
	reject []string       // why requests were refused, for tests to read
}

// New returns a stand-in for the apps of keys, whose admin account is
// admin, keeping its groups in memory.
func New(keys map[string][]byte, admin string) *Server {
	return NewServer(Config{Keys: keys, Admin: admin})
}

// NewServer returns a stand-in configured by cfg.
func NewServer(cfg Config) *Server {
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	return &Server{
		keys:  cfg.Keys,
		admin: cfg.Admin,
		sigs:  auth.NewUserSigVerifier(cfg.Keys),
		store: cfg.Store,
		calls: make(map[string]int),
		asked: make(map[string]int),
	}
}

func key(app, id string) string { return app + "/" + id }

// CreateGroup makes group id of type typ ("Public", "Work", "AVChatRoom", …)
// with owner and members; a group made again starts anew.
func (s *Server) CreateGroup(app, id, typ, owner string, members ...string) error {
	return s.store.Update(context.Background(), app, id, func(*Group) *Group {
		g := &Group{Type: typ, Roles: map[string]string{}}
		for _, m := range members {
			g.Roles[m] = "Member"
		}
		if owner != "" {
			g.Roles[owner] = "Owner"
		}
		return g
	})
}

// Join makes users members of a group (creating a Public one if need be).
func (s *Server) Join(app, id string, users ...string) error {
	return s.Joined(context.Background(), app, id, users...)
}

// Leave removes users from a group.
func (s *Server) Leave(app, id string, users ...string) error {
	return s.Left(context.Background(), app, id, users...)
}

// Destroy disbands a group.
func (s *Server) Destroy(app, id string) error {
	return s.Destroyed(context.Background(), app, id)
}

// Created makes group id anew, of type typ, with users as its members, as
// the IM has it after it made the group: owner, when not "", is its Owner
// (a member even when users leave it out), everyone else a Member, and a
// type not given is Public. With Joined, Left and Destroyed it is a
// callback.Membership, which a demo hub tells of each callback it takes.
func (s *Server) Created(ctx context.Context, app, id, typ, owner string, users ...string) error {
	if typ == "" {
		typ = "Public"
	}
	return s.store.Update(ctx, app, id, func(*Group) *Group {
		g := &Group{Type: typ, Roles: map[string]string{}}
		for _, u := range users {
			g.Roles[u] = "Member"
		}
		if owner != "" {
			g.Roles[owner] = "Owner"
		}
		return g
	})
}

// Joined makes users members of a group, as the IM has them after a
// member joins: a group it did not know is made, Public, as the stand-in
// cannot know its type.
func (s *Server) Joined(ctx context.Context, app, id string, users ...string) error {
	return s.store.Update(ctx, app, id, func(g *Group) *Group {
		if g == nil {
			g = &Group{Type: "Public", Roles: map[string]string{}}
		}
		for _, u := range users {
			if g.Roles[u] == "" {
				g.Roles[u] = "Member"
			}
		}
		return g
	})
}

// Left removes users from a group, as the IM does when they quit or are
// removed.
func (s *Server) Left(ctx context.Context, app, id string, users ...string) error {
	return s.store.Update(ctx, app, id, func(g *Group) *Group {
		if g != nil {
			for _, u := range users {
				delete(g.Roles, u)
			}
		}
		return g
	})
}

// Destroyed disbands a group.
func (s *Server) Destroyed(ctx context.Context, app, id string) error {
	return s.store.Update(ctx, app, id, func(*Group) *Group { return nil })
}

// GroupsOf returns the groups of app that user is a member of, sorted:
// what the IM's get_joined_group_list would list.
func (s *Server) GroupsOf(ctx context.Context, app, user string) ([]string, error) {
	all, err := s.store.Groups(ctx, app)
	if err != nil {
		return nil, err
	}
	var ids []string
	for id, g := range all {
		if g.Roles[user] != "" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// SetFault makes every later call fail as f (FaultNone: answer again).
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// SetDelay makes every later answer wait d first.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetRate allows perSecond calls a second (in bursts of burst) and answers
// the rest FAIL with CodeRateLimited; 0 allows any.
func (s *Server) SetRate(perSecond float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if perSecond <= 0 {
		s.limit = nil
		return
	}
	s.limit = rate.NewLimiter(rate.Limit(perSecond), burst)
}

// Behaviour is what the stand-in was told to do instead of answering
// plainly: its fault, its delay and its rate (0: any).
type Behaviour struct {
	Fault Fault
	Delay time.Duration
	Rate  float64
	Burst int
}

// Behaviour returns what it was told by SetFault, SetDelay and SetRate.
func (s *Server) Behaviour() Behaviour {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := Behaviour{Fault: s.fault, Delay: s.delay}
	if s.limit != nil {
		b.Rate, b.Burst = float64(s.limit.Limit()), s.limit.Burst()
	}
	return b
}

// Calls returns how many get_role_in_group calls asked about group, and how
// many accounts they named in all.
func (s *Server) Calls(app, id string) (calls, accounts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key(app, id)], s.asked[key(app, id)]
}

// Refusals returns why requests were refused, oldest first.
func (s *Server) Refusals() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reject...)
}

// answer writes the IM's answer shape: OK with fields, or FAIL.
func answer(w http.ResponseWriter, code int, info string, fields map[string]any) {
	body := map[string]any{"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
	if code != 0 {
		body["ActionStatus"], body["ErrorCode"], body["ErrorInfo"] = "FAIL", code, info
	}
	for k, v := range fields {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func (s *Server) refuse(w http.ResponseWriter, code int, why string) {
	s.mu.Lock()
	s.reject = append(s.reject, why)
	s.mu.Unlock()
	answer(w, code, why, nil)
}

// ServeHTTP answers one REST API call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The body is read first: only then does the server notice a caller
	// that hung up, and end the context a hang or a delay waits on.
	raw, bodyErr := readBody(r)
	s.mu.Lock()
	fault, delay, limit := s.fault, s.delay, s.limit
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	switch fault {
	case FaultHang:
		<-r.Context().Done()
		return
	case FaultHTTP:
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	case FaultHTML:
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")
		return
	case FaultGarbage:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"ok","data":[1,2,3]}`)
		return
	case FaultError:
		answer(w, 10002, "internal error, please try again", nil)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path != "/v4/group_open_http_svc/get_role_in_group" {
		http.NotFound(w, r)
		return
	}
	if !s.checkQuery(w, r) {
		return
	}
	if limit != nil && !limit.Allow() {
		s.refuse(w, CodeRateLimited, "API call frequency over the limit")
		return
	}
	s.rolesInGroup(w, r, raw, bodyErr)
}

// checkQuery checks the query every call carries, as the overview
// documents it.
func (s *Server) checkQuery(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	for _, name := range []string{"sdkappid", "identifier", "usersig", "random", "contenttype"} {
		if len(q[name]) != 1 {
			s.refuse(w, CodeBadRequest, "query parameter "+name+" must be given once")
			return false
		}
	}
	app := q.Get("sdkappid")
	if _, ok := s.keys[app]; !ok {
		s.refuse(w, CodeUnknownApp, "sdkappid is not an app")
		return false
	}
	if q.Get("identifier") != s.admin {
		s.refuse(w, CodeNotAdmin, "identifier is not the app admin")
		return false
	}
	if _, err := s.sigs.Verify(q.Get("usersig"), app, s.admin); err != nil {
		s.refuse(w, CodeBadSig, "usersig does not verify: "+err.Error())
		return false
	}
	if _, err := strconv.ParseUint(q.Get("random"), 10, 32); err != nil {
		s.refuse(w, CodeBadRequest, "random is not a 32-bit unsigned number")
		return false
	}
	if q.Get("contenttype") != "json" {
		s.refuse(w, CodeBadRequest, "contenttype must be json")
		return false
	}
	return true
}

func (s *Server) rolesInGroup(w http.ResponseWriter, r *http.Request, raw []byte, err error) {
	var req struct {
		GroupID  *string  `json:"GroupId"`
		Accounts []string `json:"User_Account"`
	}
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		err = dec.Decode(&req)
	}
	switch {
	case err != nil:
		s.refuse(w, CodeBadRequest, "body is not the documented JSON: "+err.Error())
		return
	case !exactKeys(raw, "GroupId", "User_Account"):
		s.refuse(w, CodeBadRequest, "body keys must be exactly GroupId and User_Account")
		return
	case req.GroupID == nil || *req.GroupID == "":
		s.refuse(w, CodeBadRequest, "GroupId is required")
		return
	case len(req.Accounts) == 0 || len(req.Accounts) > 500:
		s.refuse(w, CodeBadRequest, "User_Account takes 1 to 500 accounts")
		return
	}
	app := r.URL.Query().Get("sdkappid")
	k := key(app, *req.GroupID)
	s.mu.Lock()
	s.calls[k]++
	s.asked[k] += len(req.Accounts)
	s.mu.Unlock()
	g, err := s.store.Group(r.Context(), app, *req.GroupID)
	switch {
	case err != nil:
		answer(w, 10002, "internal error, please try again", nil)
	case g == nil:
		answer(w, CodeNoGroup, "group does not exist", nil)
	case g.Type == "AVChatRoom":
		answer(w, CodeNoRoles, "this API does not support audio-video groups", nil)
	default:
		list := make([]map[string]string, 0, len(req.Accounts))
		for _, a := range req.Accounts {
			role := g.Roles[a]
			if role == "" {
				role = "NotMember"
			}
			list = append(list, map[string]string{"Member_Account": a, "Role": role})
		}
		answer(w, 0, "", map[string]any{"UserIdList": list})
	}
}

func readBody(r *http.Request) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(http.MaxBytesReader(nil, r.Body, 64<<10))
	return b.Bytes(), err
}

// exactKeys reports whether the JSON object raw has exactly the keys
// named, each once, spelt as given: encoding/json alone would take
// "groupid" for GroupId.
func exactKeys(raw []byte, want ...string) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		k, _ := t.(string)
		if seen[k] || !slices.Contains(want, k) {
			return false
		}
		seen[k] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	return len(seen) == len(want)
}
