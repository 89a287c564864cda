// Package config reads the HCL file given to `ecaphost run` and
// `ecaphost validate`.
//
// Reading happens in two stages, because the schema of a module's `config`
// block is only known once its plugin has been launched and described:
//
//  1. Parse checks the syntax, the structure of the file and every setting
//     the host owns (plugin_dir, output blocks, the common module settings)
//     and returns a File.
//  2. Module.DecodeConfig evaluates one module's `config` block against the
//     sdk.Schema its plugin declared and returns plain values, defaults
//     filled in.
//
// Every problem is an hcl.Diagnostic whose Subject points at the offending
// text; WriteDiagnostics prints them as "FILE:LINE:COL: error: ..." with a
// snippet of the source. Diagnostics a plugin returns about its settings
// are mapped back to the attribute they name with Module.PluginDiags.
//
// Expressions may call env("NAME"), which returns the environment variable
// NAME or "", and file_exists("PATH"), which reports whether PATH exists.
// No variables are defined.
package config
