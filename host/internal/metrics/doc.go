// Package metrics serves the host's Prometheus metrics at /metrics and
// its health at /healthz, on the address of the configuration's metrics
// block. Every value is read from the modules' and outputs' own counters
// when Prometheus scrapes, so nothing is counted twice and nothing on the
// event path changes: the metrics cost nothing between scrapes.
package metrics
