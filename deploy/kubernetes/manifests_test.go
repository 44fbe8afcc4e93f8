// Package kubernetes checks the kustomize overlays: each is rendered as
// kubectl apply -k would (render_test.go), every object decodes strictly
// into the official Kubernetes API types (an unknown or misspelt field, or
// a value of the wrong type, fails), and the parts that must agree with
// each other and with the hub do.
package kubernetes

import (
	"maps"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/imhub/imhub/hub"
)

// overlays are what an operator applies, kubectl apply -k overlays/NAME.
var overlays = []string{"single", "sentinel", "managed-redis"}

// manifests is one overlay rendered and decoded into the API types.
type manifests struct {
	configMaps   map[string]corev1.ConfigMap
	secrets      map[string]corev1.Secret
	statefulSets map[string]appsv1.StatefulSet
	services     map[string]corev1.Service
	pdbs         map[string]policyv1.PodDisruptionBudget
	ingresses    map[string]networkingv1.Ingress
}

func load(t *testing.T, overlay string) manifests {
	t.Helper()
	m := manifests{
		configMaps: map[string]corev1.ConfigMap{}, secrets: map[string]corev1.Secret{},
		statefulSets: map[string]appsv1.StatefulSet{}, services: map[string]corev1.Service{},
		pdbs: map[string]policyv1.PodDisruptionBudget{}, ingresses: map[string]networkingv1.Ingress{},
	}
	for _, o := range render(t, filepath.Join("overlays", overlay)) {
		switch id := o["apiVersion"].(string) + "/" + o.kind(); id {
		case "v1/ConfigMap":
			keep(t, o, m.configMaps)
		case "v1/Secret":
			keep(t, o, m.secrets)
		case "apps/v1/StatefulSet":
			keep(t, o, m.statefulSets)
		case "v1/Service":
			keep(t, o, m.services)
		case "policy/v1/PodDisruptionBudget":
			keep(t, o, m.pdbs)
		case "networking.k8s.io/v1/Ingress":
			keep(t, o, m.ingresses)
		default:
			t.Fatalf("%s: unexpected object %s %s", overlay, id, o.name())
		}
	}
	return m
}

// keep decodes o strictly into a T and files it under its name.
func keep[T any, P interface {
	*T
	GetName() string
}](t *testing.T, o object, into map[string]T) {
	t.Helper()
	var v T
	decodeStrict(t, o, &v)
	into[P(&v).GetName()] = v
}

// hubEnv is what the hub's container gets from the ConfigMap and the
// Secret it names, by variable, and from where.
type hubEnv struct {
	config map[string]string
	secret map[string]string
}

func (e hubEnv) get(k string) string {
	if v, ok := e.secret[k]; ok {
		return v
	}
	return e.config[k]
}

// secretSettings are the hub's settings that are secrets: they come from
// a Secret, never a ConfigMap. The IM's keys sign as any user of the app.
var secretSettings = []string{"HUB_APPS", "HUB_JWT_SECRET", "HUB_API_KEYS", "HUB_IM_KEYS", "HUB_JWT_JWKS_URL"}

func TestOverlays(t *testing.T) {
	flags := hubFlags(t)
	image := readmeImage(t)
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			m := load(t, overlay)
			hub, ok := m.statefulSets["imhub"]
			require.True(t, ok, "the hub is a StatefulSet")
			pod := hub.Spec.Template
			require.Len(t, pod.Spec.Containers, 1)
			c := pod.Spec.Containers[0]
			env := checkEnv(t, m, c, flags)

			assert.Equal(t, image, c.Image, "the image the README's docker build makes")
			checkSelectors(t, m, hub)
			checkProbesAndShutdown(t, c, pod.Spec, env)
			checkSpool(t, hub, c, env)
			checkMemory(t, c, env)
			checkExposure(t, m, env)
			checkRedis(t, overlay, m, env)
		})
	}
}

// checkEnv checks where the hub's settings come from and returns them:
// every secret from a Secret, every setting one the hub knows, and one
// Redis.
func checkEnv(t *testing.T, m manifests, c corev1.Container, flags map[string]bool) hubEnv {
	env := hubEnv{config: map[string]string{}, secret: map[string]string{}}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := m.configMaps[from.ConfigMapRef.Name]
			require.True(t, ok, "ConfigMap %s exists", from.ConfigMapRef.Name)
			maps.Copy(env.config, cm.Data)
		case from.SecretRef != nil:
			s, ok := m.secrets[from.SecretRef.Name]
			require.True(t, ok, "Secret %s exists", from.SecretRef.Name)
			maps.Copy(env.secret, s.StringData)
			for k, v := range s.Data {
				env.secret[k] = string(v)
			}
		}
	}
	for k := range env.config {
		assert.Contains(t, flags, k, "ConfigMap key %s is not a hub flag", k)
		assert.NotContains(t, env.secret, k, "%s is set twice", k)
	}
	for k := range env.secret {
		assert.Contains(t, flags, k, "Secret key %s is not a hub flag", k)
	}
	for _, k := range secretSettings {
		assert.NotContains(t, env.config, k, "%s is a secret: it goes in the Secret", k)
	}
	assert.Contains(t, env.secret, "HUB_IM_KEYS", "the Secret has the place of the IM's keys")
	for _, e := range c.Env {
		assert.Contains(t, flags, e.Name)
		assert.Empty(t, e.Value, "%s comes from the ConfigMap or a reference, not a literal in the pod", e.Name)
		if slices.Contains(secretSettings, e.Name) {
			require.NotNil(t, e.ValueFrom)
			assert.NotNil(t, e.ValueFrom.SecretKeyRef, "%s comes from a Secret", e.Name)
		}
	}
	redisURL := env.get("HUB_REDIS")
	require.NotEmpty(t, redisURL, "the hub has a Redis: replicas share it")
	if u, err := url.Parse(redisURL); err == nil && u.User != nil {
		_, hasPassword := u.User.Password()
		assert.False(t, hasPassword && env.config["HUB_REDIS"] != "", "a Redis URL with a password is in the Secret")
	}
	return env
}

func checkSelectors(t *testing.T, m manifests, hub appsv1.StatefulSet) {
	labels := hub.Spec.Template.Labels
	selects := func(sel map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	assert.True(t, selects(hub.Spec.Selector.MatchLabels), "the StatefulSet selects its own pods")
	governing, ok := m.services[hub.Spec.ServiceName]
	require.True(t, ok, "the governing Service %s exists", hub.Spec.ServiceName)
	assert.Equal(t, corev1.ClusterIPNone, governing.Spec.ClusterIP, "the governing Service is headless")
	for _, name := range []string{"imhub", "imhub-callbacks"} {
		require.Contains(t, m.services, name)
		assert.True(t, selects(m.services[name].Spec.Selector), "Service %s selects the pods", name)
	}
	assert.True(t, m.services["imhub-callbacks"].Spec.PublishNotReadyAddresses,
		"callbacks reach a hub whose Redis is away, so that it spools them")
	pdb, ok := m.pdbs["imhub"]
	require.True(t, ok, "a PodDisruptionBudget")
	assert.True(t, selects(pdb.Spec.Selector.MatchLabels), "the PodDisruptionBudget covers the pods")
	require.NotNil(t, pdb.Spec.MaxUnavailable)
	assert.Equal(t, 1, pdb.Spec.MaxUnavailable.IntValue(), "one replica away at a time")
	spread := map[string]bool{}
	for _, c := range hub.Spec.Template.Spec.TopologySpreadConstraints {
		assert.True(t, selects(c.LabelSelector.MatchLabels), "the spread counts the hub's pods")
		spread[c.TopologyKey] = true
	}
	assert.True(t, spread["kubernetes.io/hostname"], "spread over nodes")
	assert.True(t, spread["topology.kubernetes.io/zone"], "spread over zones")
}

func checkProbesAndShutdown(t *testing.T, c corev1.Container, pod corev1.PodSpec, env hubEnv) {
	require.NotNil(t, c.ReadinessProbe)
	require.NotNil(t, c.ReadinessProbe.HTTPGet)
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.NotNil(t, c.LivenessProbe)
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.NotNil(t, c.SecurityContext)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)

	// The grace period covers preStop, the hub's drain and a margin for
	// close handshakes, or Kubernetes kills sessions mid-drain.
	drain, err := time.ParseDuration(env.get("HUB_DRAIN"))
	require.NoError(t, err, "HUB_DRAIN is set")
	require.NotNil(t, c.Lifecycle)
	require.NotNil(t, c.Lifecycle.PreStop)
	require.NotNil(t, c.Lifecycle.PreStop.Sleep)
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	assert.GreaterOrEqual(t, grace, preStop+drain+5*time.Second)
}

// The hub spools by default and will not start without a writable spool
// directory; the root filesystem is read-only, so the spool is on a volume
// of its own, one that outlives the container and the pod (a claim of the
// StatefulSet's), large enough for HUB_SPOOL_MAX_BYTES.
func checkSpool(t *testing.T, hub appsv1.StatefulSet, c corev1.Container, env hubEnv) {
	dir := env.get("HUB_SPOOL_DIR")
	require.NotEmpty(t, dir, "HUB_SPOOL_DIR is set")
	require.NotEqual(t, "off", dir, "callbacks are spooled while Redis is away")
	var mounted *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		if vm.MountPath == dir {
			mounted = &c.VolumeMounts[i]
		}
	}
	require.NotNil(t, mounted, "a volume is mounted at HUB_SPOOL_DIR %s", dir)
	assert.False(t, mounted.ReadOnly)
	for _, v := range hub.Spec.Template.Spec.Volumes {
		assert.NotEqual(t, mounted.Name, v.Name, "the spool is not a pod volume (an emptyDir goes with the pod)")
	}
	var claim *corev1.PersistentVolumeClaim
	for i, pvc := range hub.Spec.VolumeClaimTemplates {
		if pvc.Name == mounted.Name {
			claim = &hub.Spec.VolumeClaimTemplates[i]
		}
	}
	require.NotNil(t, claim, "the spool %s is a claim of the StatefulSet's", mounted.Name)
	assert.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, claim.Spec.AccessModes, "one pod's alone")
	var max size
	require.NoError(t, max.parse(env.get("HUB_SPOOL_MAX_BYTES")))
	assert.GreaterOrEqual(t, claim.Spec.Resources.Requests.Storage().Value(), int64(max), "the claim holds a full spool")
}

// connBudget is the memory the manifests budget per busy connection:
// about three times what BENCHMARKS.md's summary measures, for replays and
// slow clients' queues; otherMemory is the rest of a hub.
const (
	connBudget  = 40 << 10
	otherMemory = 100 << 20
)

// The connection cap fits the memory limit at the budget, or the pod is
// killed for memory before clients are turned away with 4009.
func checkMemory(t *testing.T, c corev1.Container, env hubEnv) {
	maxConns, err := strconv.Atoi(env.get("HUB_MAX_CONNS"))
	require.NoError(t, err, "HUB_MAX_CONNS is set")
	limit := c.Resources.Limits.Memory().Value()
	assert.LessOrEqual(t, int64(maxConns)*connBudget+otherMemory, limit)
	assert.False(t, c.Resources.Requests.Memory().IsZero())
	assert.False(t, c.Resources.Requests.Cpu().IsZero())
}

// Clients reach /ws, /sse and /sdk/ through one Ingress, with timeouts a
// long-lived connection outlives; callbacks reach /im/callback alone
// through another, from the IM's ranges only, which the hub checks again;
// X-Forwarded-For is believed from a narrow range only.
func checkExposure(t *testing.T, m manifests, env hubEnv) {
	clients, ok := m.ingresses["imhub"]
	require.True(t, ok, "the clients' Ingress")
	paths := ingressPaths(clients)
	for _, p := range []string{"/ws", "/sse", "/sdk/"} {
		assert.Equal(t, "imhub", paths[p], "%s goes to the hub", p)
	}
	assert.NotContains(t, paths, "/im/callback", "callbacks have an exposure of their own")
	assert.NotContains(t, paths, "/", "nothing else is exposed to clients")
	for _, a := range []string{"nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"} {
		secs, err := strconv.Atoi(clients.Annotations[a])
		require.NoError(t, err, "%s is set", a)
		assert.Greater(t, time.Duration(secs)*time.Second, hub.DefaultConfig().PingInterval, "%s outlives a quiet WebSocket between pings", a)
	}

	cb, ok := m.ingresses["imhub-callbacks"]
	require.True(t, ok, "the callbacks' Ingress")
	assert.Equal(t, map[string]string{"/im/callback": "imhub-callbacks"}, ingressPaths(cb), "the callback path alone, to the Service that keeps not-ready hubs")
	allow := cb.Annotations["nginx.ingress.kubernetes.io/whitelist-source-range"]
	ranges := checkPrefixes(t, "whitelist-source-range", allow)
	require.NotEmpty(t, ranges, "the callback exposure is restricted to the IM's ranges")
	for _, p := range ranges {
		assert.NotZero(t, p.Bits(), "%s allows every address", p)
	}
	assert.ElementsMatch(t, ranges, checkPrefixes(t, "HUB_CALLBACK_ALLOW", env.get("HUB_CALLBACK_ALLOW")),
		"the hub checks the ranges the ingress does")

	trusted := checkPrefixes(t, "HUB_TRUSTED_PROXIES", env.get("HUB_TRUSTED_PROXIES"))
	require.NotEmpty(t, trusted, "behind the ingress the hub needs its pods trusted")
	for _, p := range trusted {
		assert.GreaterOrEqual(t, p.Bits(), 16, "%s: trust the ingress pods' range, not a whole private block", p)
	}
}

// ingressPaths maps each path of ing to the Service it goes to.
func ingressPaths(ing networkingv1.Ingress) map[string]string {
	out := map[string]string{}
	for _, r := range ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			out[p.Path] = p.Backend.Service.Name
		}
	}
	return out
}

func checkPrefixes(t *testing.T, what, list string) []netip.Prefix {
	var out []netip.Prefix
	for s := range strings.SplitSeq(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		require.NoError(t, err, "%s: %q is a CIDR", what, s)
		out = append(out, p)
	}
	return out
}

// The Redis an overlay runs keeps its append-only file on a claim; the
// sentinel overlay runs what deploy/README.md's failover section says.
func checkRedis(t *testing.T, overlay string, m manifests, env hubEnv) {
	redisURL := env.get("HUB_REDIS")
	rs, ok := m.statefulSets["redis"]
	if overlay == "managed-redis" {
		assert.False(t, ok, "a managed Redis is not run here")
		assert.NotContains(t, env.config, "HUB_REDIS", "its URL, with a password, is in the Secret")
		return
	}
	require.True(t, ok, "the overlay runs a Redis")
	conf := redisConf(m.configMaps["redis"].Data["redis.conf"])
	assert.Equal(t, "yes", conf["appendonly"], "offsets and history survive a restart")
	assert.Equal(t, "always", conf["appendfsync"])
	assert.Equal(t, "noeviction", conf["maxmemory-policy"])
	c := rs.Spec.Template.Spec.Containers[0]
	var dataMount string
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == conf["dir"] {
			dataMount = vm.Name
		}
	}
	require.NotEmpty(t, dataMount, "a volume at Redis's dir %s", conf["dir"])
	claimed := false
	for _, pvc := range rs.Spec.VolumeClaimTemplates {
		claimed = claimed || pvc.Name == dataMount
	}
	assert.True(t, claimed, "the append-only file is on a persistent volume")

	switch overlay {
	case "single":
		assert.EqualValues(t, 1, *rs.Spec.Replicas)
		assert.True(t, strings.HasPrefix(redisURL, "redis://"))
	case "sentinel":
		assert.EqualValues(t, 2, *rs.Spec.Replicas, "a primary and one replica")
		readme, err := os.ReadFile("../README.md")
		require.NoError(t, err)
		assert.Contains(t, string(readme), "`min-replicas-to-write 1` and `min-replicas-max-lag 10`")
		assert.Equal(t, "1", conf["min-replicas-to-write"])
		assert.Equal(t, "10", conf["min-replicas-max-lag"])
		sentinels, ok := m.statefulSets["redis-sentinel"]
		require.True(t, ok)
		assert.EqualValues(t, 3, *sentinels.Spec.Replicas, "three sentinels")
		monitor := strings.Fields(redisConf(m.configMaps["redis"].Data["sentinel.conf"])["sentinel monitor"])
		require.Len(t, monitor, 4, "sentinel monitor NAME HOST PORT QUORUM")
		assert.Equal(t, "2", monitor[3], "two sentinels of three agree on a failover")
		u, err := url.Parse(redisURL)
		require.NoError(t, err)
		assert.Equal(t, "redis+sentinel", u.Scheme)
		assert.Equal(t, monitor[0], u.Query().Get("master_name"), "the hubs ask for the primary the sentinels watch")
		assert.Len(t, u.Query()["addr"], 2, "the hubs know all three sentinels")
	}
}

// redisConf reads a redis.conf into directive -> the rest of its line;
// "sentinel monitor" and its kind are keyed by their first two words.
func redisConf(s string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, rest, _ := strings.Cut(line, " ")
		if key == "sentinel" {
			var sub string
			sub, rest, _ = strings.Cut(rest, " ")
			key += " " + sub
		}
		out[key] = strings.TrimSpace(rest)
	}
	return out
}

// readmeImage is the image deploy/README.md's docker build names.
func readmeImage(t *testing.T) string {
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(b), "docker build -t ")
	require.True(t, ok, "deploy/README.md gives the docker build command")
	image, _, _ := strings.Cut(rest, " ")
	return image
}

// size is a HUB_* size: a number with an optional KiB, MiB or GiB.
type size int64

func (s *size) parse(v string) error {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if rest, ok := strings.CutSuffix(v, suffix); ok {
			v, mult = rest, m
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	*s = size(n * mult)
	return err
}

// hubFlags lists the HUB_* variables the hub's config reads: the flags
// cmd/hub defines, in config.go and beside it.
func hubFlags(t *testing.T) map[string]bool {
	files, err := filepath.Glob("../../cmd/hub/*.go")
	require.NoError(t, err)
	var src []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		src = append(src, string(b))
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(strings.Join(src, "\n"), "\n") {
		if _, rest, ok := strings.Cut(line, `fs.`); ok {
			if _, name, ok := strings.Cut(rest, `, "`); ok {
				name, _, _ = strings.Cut(name, `"`)
				flags["HUB_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = true
			}
		}
	}
	require.Contains(t, flags, "HUB_REDIS")
	return flags
}

// The Dockerfile builds as make build does, onto a non-root base.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	df := string(b)
	mk, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	assert.Contains(t, string(mk), "build -trimpath")
	assert.Contains(t, df, "go build -trimpath", "the same flags as make build")
	assert.Contains(t, df, "CGO_ENABLED=0", "a static binary")
	assert.Contains(t, df, "./cmd/hub")
	assert.Contains(t, df, "USER nonroot")
	assert.Contains(t, df, "FROM gcr.io/distroless/static")
}
