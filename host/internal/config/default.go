package config

import _ "embed"

// DefaultFilename is the name diagnostics give the embedded default
// configuration.
const DefaultFilename = "<default>"

// DefaultSource is the configuration used when `ecaphost run` is given no
// file: modules bash and openssl, one stdout output in text format. Callers
// must not modify it.
//
//go:embed default.hcl
var DefaultSource []byte
