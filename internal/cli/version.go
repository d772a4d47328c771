package cli

import (
	"fmt"
	"io"
	"regexp"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
)

// buildInfo is what `2501 version` reports, from the binary's build
// information: the module version (`go install …@v1.2.0`), the VCS revision
// and commit time that `go build` stamps in a checkout.
type buildInfo struct {
	Version   string
	Commit    string
	BuildDate string
	Modified  bool
	GoVersion string
	Platform  string
}

// Values when the build information does not say.
const (
	develVersion = "(devel)"
	unknown      = "unknown"
)

// pseudoVersion matches a Go pseudo-version's time and revision, as in
// v0.0.0-20261201201500-a3c1d91b2c3d: `go install …@latest` of an untagged
// commit records no VCS settings, only this.
var pseudoVersion = regexp.MustCompile(`(?:^|[.-])(\d{14})-([0-9a-f]{12})(?:\+.*)?$`)

func readBuildInfo() buildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return newBuildInfo(bi)
}

// newBuildInfo reads bi, which may be nil.
func newBuildInfo(bi *debug.BuildInfo) buildInfo {
	v := buildInfo{
		Version: develVersion, Commit: unknown, BuildDate: unknown,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi == nil {
		return v
	}
	if bi.GoVersion != "" {
		v.GoVersion = bi.GoVersion
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.BuildDate = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	if m := pseudoVersion.FindStringSubmatch(v.Version); m != nil {
		if v.Commit == unknown {
			v.Commit = m[2]
		}
		if t, err := time.Parse("20060102150405", m[1]); err == nil && v.BuildDate == unknown {
			v.BuildDate = t.UTC().Format(time.RFC3339)
		}
	}
	return v
}

// short is the one line `2501 --version` prints after the name.
func (v buildInfo) short() string {
	commit := v.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if v.Modified {
		commit += "+modified"
	}
	return fmt.Sprintf("%s (commit %s, built %s)", v.Version, commit, v.BuildDate)
}

func versionCommand(e Env, g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "print the version, commit and build date of this 2501 binary",
		Example: "2501 version\n2501 version --output json\n2501 --version",
		Args:    noArgs,
		RunE: func(cc *cobra.Command, _ []string) error {
			c := &Call{Env: e, global: *g}
			if err := c.global.validate(); err != nil {
				return &actionError{"version", err}
			}
			v := readBuildInfo()
			return c.Print(versionOutput(v), func(w io.Writer) {
				modified := ""
				if v.Modified {
					modified = " (with uncommitted changes)"
				}
				fmt.Fprintf(w, "%s version %s\ncommit:  %s%s\nbuilt:   %s\ngo:      %s %s\n", Name, v.Version, v.Commit, modified, v.BuildDate, v.GoVersion, v.Platform)
			})
		},
	}
}
