//go:build unix

package ingest_test

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time this process has used. Benchmarks report it per
// operation next to wall time, which a shared, busy machine inflates.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
