package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomize's Kustomization that these
// manifests use. It is decoded strictly: a field the renderer below does
// not apply fails the test rather than being rendered wrong.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Resources  []string
	Labels     []struct {
		Pairs map[string]string
	}
	Images []struct {
		Name    string
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	}
	Patches []struct {
		Path   string
		Target struct{ Kind, Name string }
	}
}

// object is one rendered Kubernetes object, as generic JSON.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }

func (o object) name() string {
	m, _ := o["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}

// render builds the kustomization in dir as kubectl apply -k would, for
// the few features these files use: resources (files, and directories
// with a kustomization of their own), labels on metadata, images, and
// JSON 6902 patches with a target. The result is in resource order.
// kustomize's own Go API (sigs.k8s.io/kustomize/api v0.21.3) asks for a
// newer Go than this module's and a dozen modules more for what these few
// functions do.
func render(t *testing.T, dir string) []object {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	require.NoError(t, err)
	var k kustomization
	require.NoError(t, yaml.UnmarshalStrict(b, &k), "%s/kustomization.yaml uses only what the renderer applies", dir)
	require.Equal(t, "kustomize.config.k8s.io/v1beta1", k.APIVersion)
	require.Equal(t, "Kustomization", k.Kind)

	var objs []object
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		fi, err := os.Stat(p)
		require.NoError(t, err, "resource %s of %s", r, dir)
		if fi.IsDir() {
			objs = append(objs, render(t, p)...)
			continue
		}
		objs = append(objs, readObjects(t, p)...)
	}
	for _, l := range k.Labels {
		for _, o := range objs {
			meta := o["metadata"].(map[string]any)
			labels, _ := meta["labels"].(map[string]any)
			if labels == nil {
				labels = map[string]any{}
				meta["labels"] = labels
			}
			for k, v := range l.Pairs {
				labels[k] = v
			}
		}
	}
	for _, img := range k.Images {
		for _, o := range objs {
			setImage(o, img.Name, img.NewName, img.NewTag)
		}
	}
	for _, p := range k.Patches {
		b, err := os.ReadFile(filepath.Join(dir, p.Path))
		require.NoError(t, err)
		var ops []patchOp
		require.NoError(t, yaml.UnmarshalStrict(b, &ops), "%s/%s is a JSON 6902 patch", dir, p.Path)
		n := 0
		for _, o := range objs {
			if o.kind() == p.Target.Kind && o.name() == p.Target.Name {
				n++
				for _, op := range ops {
					require.NoError(t, op.apply(o), "%s/%s on %s %s", dir, p.Path, o.kind(), o.name())
				}
			}
		}
		require.Equal(t, 1, n, "%s/%s targets one object", dir, p.Path)
	}
	seen := map[string]bool{}
	for _, o := range objs {
		id := o.kind() + "/" + o.name()
		require.False(t, seen[id], "%s: %s twice", dir, id)
		seen[id] = true
	}
	return objs
}

// readObjects reads the YAML documents of one file.
func readObjects(t *testing.T, path string) []object {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var objs []object
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		var o object
		require.NoError(t, yaml.Unmarshal(doc, &o), path)
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs
}

// setImage gives the containers of o whose image is name the new name and
// tag, as kustomize's images field does.
func setImage(o object, name, newName, newTag string) {
	spec, _ := o["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	pod, _ := tmpl["spec"].(map[string]any)
	for _, key := range []string{"containers", "initContainers"} {
		cs, _ := pod[key].([]any)
		for _, c := range cs {
			c := c.(map[string]any)
			image, _ := c["image"].(string)
			base, tag, _ := strings.Cut(image, ":")
			if base != name {
				continue
			}
			if newName != "" {
				base = newName
			}
			if newTag != "" {
				tag = newTag
			}
			if tag != "" {
				base += ":" + tag
			}
			c["image"] = base
		}
	}
}

// patchOp is one operation of a JSON patch (RFC 6902): add, replace and
// remove, which is what the overlays use.
type patchOp struct {
	Op    string
	Path  string
	Value any `json:"value,omitempty"`
}

func (p patchOp) apply(o object) error {
	parts := strings.Split(strings.TrimPrefix(p.Path, "/"), "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	var parent any = map[string]any(o)
	for _, key := range parts[:len(parts)-1] {
		next, err := child(parent, key)
		if err != nil {
			return fmt.Errorf("%s %s: %w", p.Op, p.Path, err)
		}
		parent = next
	}
	last := parts[len(parts)-1]
	switch m := parent.(type) {
	case map[string]any:
		_, exists := m[last]
		switch p.Op {
		case "add":
			m[last] = p.Value
		case "replace":
			if !exists {
				return fmt.Errorf("replace %s: no such member", p.Path)
			}
			m[last] = p.Value
		case "remove":
			if !exists {
				return fmt.Errorf("remove %s: no such member", p.Path)
			}
			delete(m, last)
		default:
			return fmt.Errorf("op %q is not applied here", p.Op)
		}
		return nil
	default:
		return fmt.Errorf("%s %s: only members of objects are patched here", p.Op, p.Path)
	}
}

// child is the member key of an object or, for a number, the element of
// an array.
func child(v any, key string) (any, error) {
	switch c := v.(type) {
	case map[string]any:
		next, ok := c[key]
		if !ok {
			return nil, fmt.Errorf("no member %q", key)
		}
		return next, nil
	case []any:
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= len(c) {
			return nil, fmt.Errorf("no element %q", key)
		}
		return c[i], nil
	}
	return nil, fmt.Errorf("%q is not in an object or array", key)
}

// decodeStrict decodes o into the API type target, failing on any field
// the type does not have or of the wrong type.
func decodeStrict(t *testing.T, o object, target any) {
	t.Helper()
	b, err := json.Marshal(o)
	require.NoError(t, err)
	require.NoError(t, yaml.UnmarshalStrict(b, target), "%s %s does not match the API schema", o.kind(), o.name())
}
