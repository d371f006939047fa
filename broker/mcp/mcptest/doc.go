// Package mcptest drives an MCP server the way agents do, with the two
// client libraries users have: the mark3labs/mcp-go client and the official
// modelcontextprotocol/go-sdk client, over streamable HTTP with the caller's
// headers. Front-door tests and end-to-end tests of the binary share it.
//
// It is test support only: nothing outside _test files may import it, and
// it must never be linked into the toolgate binary.
package mcptest
