package localrun

import "syscall"

// procAttr makes a function process die with the program that runs it, even
// when that program is killed without a chance to stop it, and keeps it out
// of the terminal's process group: Ctrl-C reaches make dev, which then stops
// the functions itself.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
