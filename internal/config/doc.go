// Package config is toolgate's configuration document (toolgate.yaml) as
// plain Go structs, plus loading: ${ENV} substitution, validation against
// the shipped JSON Schema, and a list of every problem with file, path and
// reason.
//
// The structs are the configuration contract. Packages do not read YAML or
// environment variables themselves: cmd/toolgate loads a Config here and
// hands each package the typed values it needs. Config must never log a
// resolved secret.
package config
