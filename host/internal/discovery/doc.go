// Package discovery finds plugin binaries and decides whether the host may
// run them.
//
// A plugin named NAME is the executable file ecaphost-plugin-NAME. It is
// searched, in order, in the config's plugin_dir, in each directory of
// $ECAPHOST_PLUGIN_PATH (a colon-separated list), then in plugins/ beside
// the ecaphost binary. Plugins run as root, so a file, or a directory on
// the way to it, that another user could have written is refused before it
// is ever executed.
package discovery
