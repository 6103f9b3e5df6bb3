// Package manifestcheck decodes rendered Kubernetes manifests strictly into
// the Kubernetes API's Go types and checks the properties Spool's chart
// promises (graceful shutdown, probes, hardening, labels, scraping).
//
// Strict decoding uses apimachinery's serializer with Strict: true, which
// rejects unknown fields, wrong-case field names, wrong types, bad quantities
// and duplicate keys. Kinds not in the scheme fail, except the CRD kinds in
// crdKinds, which are allow-listed by exact apiVersion and kind and decoded
// into mirror structs of the upstream CRD fields the chart uses (also
// strictly, so a misspelled CRD field fails too).
package manifestcheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Object is one decoded manifest document.
type Object struct {
	// Source names the document in messages: the "# Source:" comment helm
	// writes, else the file name, with the document's index.
	Source string
	GVK    schema.GroupVersionKind
	// Obj is a typed Kubernetes object (*appsv1.Deployment, ...) or, for an
	// allow-listed CRD kind, a pointer to its mirror struct (*ScaledObject, ...).
	Obj any
}

// Name is the object's metadata.name.
func (o Object) Name() string {
	if m, ok := o.Obj.(interface{ GetName() string }); ok {
		return m.GetName()
	}
	return ""
}

func (o Object) String() string { return fmt.Sprintf("%s %s (%s)", o.GVK.Kind, o.Name(), o.Source) }

var (
	scheme  = runtime.NewScheme()
	decoder runtime.Decoder
)

func init() {
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, autoscalingv2.AddToScheme,
		policyv1.AddToScheme, networkingv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	decoder = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})
}

// crdKinds are the custom resources the chart may render, by exact
// apiVersion and kind. Nothing else outside the scheme is accepted.
var crdKinds = map[schema.GroupVersionKind]func() any{
	{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}: func() any { return new(ServiceMonitor) },
	{Group: "monitoring.coreos.com", Version: "v1", Kind: "PodMonitor"}:     func() any { return new(PodMonitor) },
	{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"}: func() any { return new(PrometheusRule) },
	{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}:           func() any { return new(ScaledObject) },
}

// Decode splits multi-document YAML and decodes every document strictly.
// Documents holding only comments or whitespace (helm writes those for
// templates that render nothing) are dropped. name is used in messages.
func Decode(name string, data []byte) ([]Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []Object
	var errs []error
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: split documents: %w", name, err)
		}
		if isEmpty(doc) {
			continue
		}
		source := fmt.Sprintf("%s#%d", name, i)
		if s := sourceComment(doc); s != "" {
			source = fmt.Sprintf("%s (%s#%d)", s, name, i)
		}
		obj, err := decodeOne(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", source, err))
			continue
		}
		obj.Source = source
		objs = append(objs, obj)
	}
	return objs, errors.Join(errs...)
}

func decodeOne(doc []byte) (Object, error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return Object{}, fmt.Errorf("read apiVersion/kind: %w", err)
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return Object{}, err
	}
	gvk := gv.WithKind(tm.Kind)
	if newCRD, ok := crdKinds[gvk]; ok {
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return Object{}, err
		}
		obj := newCRD()
		strictErrs, err := sigsjson.UnmarshalStrict(js, obj)
		if err != nil {
			return Object{}, err
		}
		if len(strictErrs) > 0 {
			return Object{}, fmt.Errorf("strict decoding error (%s mirror): %w", tm.Kind, errors.Join(strictErrs...))
		}
		return Object{GVK: gvk, Obj: obj}, nil
	}
	obj, got, err := decoder.Decode(doc, nil, nil)
	if err != nil {
		return Object{}, err
	}
	return Object{GVK: *got, Obj: obj}, nil
}

func isEmpty(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line != "---" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

func sourceComment(doc []byte) string {
	for _, line := range strings.Split(string(doc), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "# Source: "); ok {
			return s
		}
	}
	return ""
}
