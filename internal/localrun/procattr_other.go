//go:build !linux

package localrun

import "syscall"

func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
