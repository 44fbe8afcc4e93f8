// Package kubernetes checks the manifests: each document decodes strictly
// into the official Kubernetes API types (an unknown or misspelt field, or
// a value of the wrong type, fails), and the parts that must agree with the
// hub do.
package kubernetes

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

type manifests struct {
	config     corev1.ConfigMap
	secret     corev1.Secret
	deployment appsv1.Deployment
	service    corev1.Service
	callbacks  corev1.Service
	pdb        policyv1.PodDisruptionBudget
}

func load(t *testing.T) manifests {
	b, err := os.ReadFile("hub.yaml")
	require.NoError(t, err)
	var m manifests
	seen := map[string]bool{}
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		var head struct{ Kind, APIVersion string }
		require.NoError(t, yaml.Unmarshal(doc, &head))
		var target any
		switch head.APIVersion + "/" + head.Kind {
		case "v1/ConfigMap":
			target = &m.config
		case "v1/Secret":
			target = &m.secret
		case "apps/v1/Deployment":
			target = &m.deployment
		case "v1/Service":
			var meta struct{ Metadata struct{ Name string } }
			require.NoError(t, yaml.Unmarshal(doc, &meta))
			target = &m.service
			if meta.Metadata.Name == "imhub-callbacks" {
				target = &m.callbacks
			}
		case "policy/v1/PodDisruptionBudget":
			target = &m.pdb
		default:
			t.Fatalf("unexpected document %s %s", head.APIVersion, head.Kind)
		}
		require.NoError(t, yaml.UnmarshalStrict(doc, target), "%s does not match the API schema", head.Kind)
		seen[head.Kind] = true
	}
	for _, k := range []string{"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"} {
		require.True(t, seen[k], "missing %s", k)
	}
	return m
}

func TestManifests(t *testing.T) {
	m := load(t)
	d := m.deployment
	pod := d.Spec.Template
	labels := pod.Labels
	for k, v := range d.Spec.Selector.MatchLabels {
		assert.Equal(t, v, labels[k], "the Deployment selects its own pods")
	}
	for k, v := range m.service.Spec.Selector {
		assert.Equal(t, v, labels[k], "the Service selects the pods")
	}
	for k, v := range m.callbacks.Spec.Selector {
		assert.Equal(t, v, labels[k], "the callbacks Service selects the pods")
	}
	assert.True(t, m.callbacks.Spec.PublishNotReadyAddresses,
		"callbacks reach a hub whose Redis is away, so that it spools them")

	// The connection cap fits the memory limit at the measured ~40 KiB per
	// busy connection, with 100 MiB for the rest.
	maxConns, err := strconv.Atoi(m.config.Data["HUB_MAX_CONNS"])
	require.NoError(t, err, "HUB_MAX_CONNS is set")
	limit := pod.Spec.Containers[0].Resources.Limits.Memory().Value()
	assert.LessOrEqual(t, int64(maxConns)*40<<10+100<<20, limit)
	for k, v := range m.pdb.Spec.Selector.MatchLabels {
		assert.Equal(t, v, labels[k], "the PodDisruptionBudget covers the pods")
	}

	require.Len(t, pod.Spec.Containers, 1)
	c := pod.Spec.Containers[0]
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	assert.NotNil(t, c.Resources.Requests.Cpu())
	assert.False(t, c.Resources.Requests.Memory().IsZero())
	require.NotNil(t, c.SecurityContext)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	assert.True(t, *pod.Spec.SecurityContext.RunAsNonRoot)

	// The grace period covers preStop, the hub's drain and a margin for
	// close handshakes, or Kubernetes kills sessions mid-drain.
	drain, err := time.ParseDuration(m.config.Data["HUB_DRAIN"])
	require.NoError(t, err)
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	assert.GreaterOrEqual(t, grace, preStop+drain+5*time.Second)

	// Every setting is one the hub knows.
	flags := hubFlags(t)
	for k := range m.config.Data {
		assert.Contains(t, flags, k, "ConfigMap key %s is not a hub flag", k)
	}
	for k := range m.secret.StringData {
		assert.Contains(t, flags, k, "Secret key %s is not a hub flag", k)
	}
	// What is a secret is in the Secret, never in the ConfigMap: the IM's
	// keys sign as any user of the app.
	for _, k := range []string{"HUB_APPS", "HUB_JWT_SECRET", "HUB_API_KEYS", "HUB_IM_KEYS"} {
		assert.NotContains(t, m.config.Data, k, "%s is a secret: it goes in the Secret", k)
	}
	assert.Contains(t, m.secret.StringData, "HUB_IM_KEYS", "the Secret has the place of the IM's keys")
	for _, e := range c.Env {
		assert.Contains(t, flags, e.Name)
	}
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, "8080", pod.Annotations["prometheus.io/port"])

	// The hub spools by default and will not start without a writable
	// spool directory; the root filesystem is read-only, so the spool is
	// on a volume of its own, large enough for HUB_SPOOL_MAX_BYTES.
	dir := m.config.Data["HUB_SPOOL_DIR"]
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
	var spoolVol *corev1.Volume
	for i, v := range pod.Spec.Volumes {
		if v.Name == mounted.Name {
			spoolVol = &pod.Spec.Volumes[i]
		}
	}
	require.NotNil(t, spoolVol, "the volume %s is declared", mounted.Name)
	if ed := spoolVol.EmptyDir; ed != nil && ed.SizeLimit != nil {
		var max size
		require.NoError(t, max.parse(m.config.Data["HUB_SPOOL_MAX_BYTES"]))
		assert.GreaterOrEqual(t, ed.SizeLimit.Value(), int64(max), "the volume holds a full spool")
	}
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
