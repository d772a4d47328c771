package cli

import (
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewBuildInfo(t *testing.T) {
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want buildInfo
	}{
		{name: "no build information", bi: nil, want: buildInfo{Version: "(devel)", Commit: "unknown", BuildDate: "unknown"}},
		{name: "go build in a checkout", bi: &debug.BuildInfo{
			GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{
				{Key: "vcs", Value: "git"},
				{Key: "vcs.revision", Value: "a3c1d91b2c3d4e5f60718293a4b5c6d7e8f90a1b"},
				{Key: "vcs.time", Value: "2026-12-01T20:15:00Z"},
				{Key: "vcs.modified", Value: "true"},
			},
		}, want: buildInfo{Version: "(devel)", Commit: "a3c1d91b2c3d4e5f60718293a4b5c6d7e8f90a1b", BuildDate: "2026-12-01T20:15:00Z", Modified: true, GoVersion: "go1.26.0"}},
		{name: "go install of a tag", bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.4.0"}},
			want: buildInfo{Version: "v1.4.0", Commit: "unknown", BuildDate: "unknown", GoVersion: "go1.26.0"}},
		{name: "go install of an untagged commit", bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20261201201500-a3c1d91b2c3d"}},
			want: buildInfo{Version: "v0.0.0-20261201201500-a3c1d91b2c3d", Commit: "a3c1d91b2c3d", BuildDate: "2026-12-01T20:15:00Z", GoVersion: "go1.26.0"}},
		{name: "pseudo-version after a tag", bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.4.1-0.20261201201500-a3c1d91b2c3d+dirty"}},
			want: buildInfo{Version: "v1.4.1-0.20261201201500-a3c1d91b2c3d+dirty", Commit: "a3c1d91b2c3d", BuildDate: "2026-12-01T20:15:00Z", GoVersion: "go1.26.0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := newBuildInfo(tc.bi)
			got.Platform = "" // the running machine's
			if tc.want.GoVersion == "" {
				tc.want.GoVersion = got.GoVersion
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("newBuildInfo() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if got, want := newBuildInfo(tests[1].bi).short(), "(devel) (commit a3c1d91b2c3d+modified, built 2026-12-01T20:15:00Z)"; got != want {
		t.Errorf("short() = %q, want %q", got, want)
	}
}
