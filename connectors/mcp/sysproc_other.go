//go:build unix && !linux

package mcp

import "syscall"

// sysProcAttr puts a stdio server in a process group of its own, so stop
// reaches its children too. There is no parent-death signal outside Linux.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
