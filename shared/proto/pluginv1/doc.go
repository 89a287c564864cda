// Package pluginv1 holds the generated gRPC contract between the ecaphost
// host and its module plugins. Module authors use the sdk package instead;
// only the SDK's conversion code touches these types.
package pluginv1
