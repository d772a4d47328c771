package localrun

import "syscall"

// procAttr makes a function process die with the program that runs it, even
// when that program is killed without a chance to stop it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
