// Package lock reads and writes ecaphost's plugin lock file: the SHA-256
// of every plugin binary an operator approved. When a lock file is in
// force, the host refuses a plugin that is missing from it or whose bytes
// changed, before executing it.
//
// The file is JSON:
//
//	{"version": 1, "plugins": [{"name": "bash", "path": "/opt/ecaphost/plugins/ecaphost-plugin-bash", "sha256": "…"}]}
package lock
