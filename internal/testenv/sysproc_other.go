//go:build !linux

package testenv

import "syscall"

// sysProcAttr runs the server as the postgres user when we are root. There
// is no parent-death signal outside Linux; Main stops the server instead.
func sysProcAttr(ra runAs) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if ra.root {
		a.Credential = &syscall.Credential{Uid: uint32(ra.uid), Gid: uint32(ra.gid)}
	}
	return a
}
