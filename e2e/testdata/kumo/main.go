// Command kumo serves the embedded AWS emulator in a process of its own,
// so that the end-to-end suite's test binary, built with -race, does not
// instrument the emulator's internals: the suite checks snowgate, not the
// emulator. It prints the emulator's URL on one line and serves until its
// standard input closes (the test binary exited or closed the pipe).
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/sivchari/kumo"
)

func main() {
	srv := kumo.NewServer()
	fmt.Println(srv.URL)
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Close()
}
