//go:build !linux

package localrun

import "syscall"

// procAttr keeps a function process out of the terminal's process group:
// Ctrl-C reaches make dev, which then stops the functions itself.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
