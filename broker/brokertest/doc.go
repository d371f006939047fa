// Package brokertest holds small in-memory fakes of the broker's interfaces
// for tests in other packages: a Recorder that keeps every event and can be
// switched to fail.
//
// It is test support only: nothing outside _test files and other test-support
// packages may import it, and it must never be linked into the toolgate
// binary. The broker's own in-package tests cannot use it (it imports broker)
// and keep their own fake.
package brokertest
