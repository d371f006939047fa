// Package dbtest gives store tests a fresh PostgreSQL database on the
// throwaway server of internal/testenv. It is test support only and must
// never be linked into the toolgate binary.
package dbtest
