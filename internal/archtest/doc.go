// Package archtest holds the tests that enforce toolgate's architecture
// (DESIGN §2): which packages may import which, one doc.go per package, and
// no init() registration. It has no code of its own and must never gain any.
package archtest
