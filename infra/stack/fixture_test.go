package stack_test

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/snowgate/snowgate/infra/stack"
	"github.com/snowgate/snowgate/internal/awstest"
)

// Synthesizing costs seconds of node time, so every test reads the same
// templates, made once in TestMain: the data stack and the service stack
// with the default front (the HTTP API), the service stack again with
// the function URL front (url*), and once more with every other setting
// changed from its default (alt*, altSettings).
var fx struct {
	data, svc         assertions.Template
	dataDoc, svcDoc   doc
	dataName, svcName string
	urlSvc            assertions.Template
	urlSvcDoc         doc
	altSvc            assertions.Template
	altSvcDoc         doc
	edge              assertions.Template
	edgeDoc           doc
	edgeName          string
	edgeRegion        string
	// defaultEdge is the EdgeStack of the default build: nil.
	defaultEdge any
}

// altSettings are the settings of the alt* templates, and of the edge
// stack (edge*) they bring.
var altSettings = stack.Config{
	Name:               "snowgate",
	Env:                &awscdk.Environment{Account: jsii.String("123456789012"), Region: jsii.String("eu-west-1")},
	SecretPrefix:       "team-a/snowgate/",
	LegacySecretPrefix: "snowgate/",
	IngestConcurrency:  20,
	Edge:               &stack.Edge{RateLimit: 2000, AllowIPs: []string{"203.0.113.0/28", "198.51.100.7", "2001:db8::/64"}},
}

func TestMain(m *testing.M) {
	// kumo has no CloudFormation: the deploy test needs moto (or an
	// endpoint such as LocalStack), so use moto when nothing is chosen.
	if os.Getenv(awstest.EnvEmulator) == "" {
		if _, err := exec.LookPath("moto_server"); err == nil {
			os.Setenv(awstest.EnvEmulator, awstest.Moto)
		}
	}
	assets, err := os.MkdirTemp("", "snowgate-assets")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := placeholderBundles(assets); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	synth(assets)
	// The templates are in memory now; the bundles are no longer read.
	os.RemoveAll(assets)
	awstest.Main(m)
}

// placeholderBundles writes <fn>.zip files holding a dummy bootstrap so the
// templates synthesize without building the functions.
func placeholderBundles(dir string) error {
	for _, fn := range stack.Functions {
		f, err := os.Create(filepath.Join(dir, fn+".zip"))
		if err != nil {
			return err
		}
		zw := zip.NewWriter(f)
		w, err := zw.Create("bootstrap")
		if err == nil {
			_, err = w.Write([]byte("#!/bin/sh\necho placeholder\n"))
		}
		if err == nil {
			err = zw.Close()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("placeholder %s: %w", fn, err)
		}
	}
	return nil
}

func synth(assets string) {
	app := awscdk.NewApp(nil)
	data, svc := stack.Build(app, stack.Config{Name: "snowgate", AssetDir: assets})
	fx.dataName, fx.svcName = *data.StackName(), *svc.StackName()
	fx.data = assertions.Template_FromStack(data.Stack, nil)
	fx.svc = assertions.Template_FromStack(svc.Stack, nil)
	fx.dataDoc = toDoc(fx.data)
	fx.svcDoc = toDoc(fx.svc)
	if svc.EdgeStack != nil {
		fx.defaultEdge = svc.EdgeStack
	}

	urlApp := awscdk.NewApp(nil)
	_, urlSvc := stack.Build(urlApp, stack.Config{Name: "snowgate", AssetDir: assets, Front: stack.FrontFunctionURL})
	fx.urlSvc = assertions.Template_FromStack(urlSvc.Stack, nil)
	fx.urlSvcDoc = toDoc(fx.urlSvc)

	altApp := awscdk.NewApp(nil)
	alt := altSettings
	alt.AssetDir = assets
	_, altSvc := stack.Build(altApp, alt)
	fx.altSvc = assertions.Template_FromStack(altSvc.Stack, nil)
	fx.altSvcDoc = toDoc(fx.altSvc)
	fx.edge = assertions.Template_FromStack(altSvc.EdgeStack, nil)
	fx.edgeDoc = toDoc(fx.edge)
	fx.edgeName = *altSvc.EdgeStack.StackName()
	fx.edgeRegion = *altSvc.EdgeStack.Region()
}

// fronts are the service templates, one per ingest front.
func fronts() []struct {
	front stack.Front
	d     doc
} {
	return []struct {
		front stack.Front
		d     doc
	}{{stack.FrontHTTPAPI, fx.svcDoc}, {stack.FrontFunctionURL, fx.urlSvcDoc}}
}

// doc is a CloudFormation template as plain JSON values.
type doc map[string]any

func toDoc(t assertions.Template) doc {
	b, err := json.Marshal(t.ToJSON())
	if err != nil {
		panic(err)
	}
	var d doc
	if err := json.Unmarshal(b, &d); err != nil {
		panic(err)
	}
	return d
}

// resources returns logical id → resource of one type ("" for all).
func (d doc) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range d["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if typ == "" || res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

// only returns the single resource of a type, failing otherwise.
func (d doc) only(t *testing.T, typ string) (string, map[string]any) {
	t.Helper()
	rs := d.resources(typ)
	if len(rs) != 1 {
		t.Fatalf("%d resources of type %s, want 1", len(rs), typ)
	}
	for id, r := range rs {
		return id, r
	}
	return "", nil
}

func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// check runs a jsii assertion, which reports a mismatch by panicking, and
// turns the panic into a test error so the other tests still run.
func check(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	f()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
