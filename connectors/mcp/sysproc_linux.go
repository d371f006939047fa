//go:build linux

package mcp

import "syscall"

// sysProcAttr puts a stdio server in a process group of its own, so stop
// reaches its children too, and kills it if toolgate dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
