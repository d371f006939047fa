//go:build linux

package testenv

import "syscall"

// sysProcAttr runs the server as the postgres user when we are root, and
// kills it when the test process dies (Pdeathsig).
func sysProcAttr(ra runAs) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if ra.root {
		a.Credential = &syscall.Credential{Uid: uint32(ra.uid), Gid: uint32(ra.gid), Groups: []uint32{}}
	}
	return a
}
