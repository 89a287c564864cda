// Package deploy checks the deployment examples of docs/deploying.md and
// packaging/: the Kubernetes manifest parses as Kubernetes objects, and
// the systemd unit passes systemd-analyze verify where it is installed.
package deploy
