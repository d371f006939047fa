// Package doortest builds a real broker.Broker wired with small in-memory
// fakes of its interfaces, for front-door tests: an Authenticator that knows
// two API keys, a Decider from an allow map, an approval gate that always
// answers "pending", a Recorder that keeps every event, a Masker that masks
// one fixed card number, and an Executor that counts executions.
//
// It is test support only: nothing outside _test files may import it, and
// it must never be wired into the toolgate binary.
package doortest
