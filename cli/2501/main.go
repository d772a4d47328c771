// Command 2501 is the snowgate command line; see internal/cli. Install it
// with `go install github.com/snowgate/snowgate/cli/2501@latest`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/snowgate/snowgate/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
