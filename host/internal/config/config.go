package config

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Output kinds, the label of an output block.
const (
	OutputStdout = "stdout"
	OutputFile   = "file"
)

// Output formats, the values of an output's format attribute.
const (
	FormatText     = "text"
	FormatJSON     = "json"
	FormatProtobuf = "protobuf"
)

// Limits of the common module settings.
const (
	// MaxCommLen is the longest comm filter: the kernel keeps 15 bytes of
	// a command name (TASK_COMM_LEN less the NUL).
	MaxCommLen = 15
	// MinBufferKiB and MaxBufferKiB bound buffer_kib (when not 0): a ring
	// buffer is a power of two pages and its size must fit a uint32.
	MinBufferKiB = 4
	MaxBufferKiB = 2 << 20
)

// The values of the priority setting.
const (
	PriorityBackground = "background"
	PriorityNormal     = "normal"
)

// File is a parsed configuration. Paths are kept as written: a relative
// path is relative to the working directory of ecaphost.
type File struct {
	Filename string
	// Source is the text Parse read, for WriteDiagnostics.
	Source []byte
	// PluginDir is empty when the file does not set plugin_dir;
	// PluginDirRange is then the zero Range.
	PluginDir      string
	PluginDirRange hcl.Range
	// Priority is PriorityBackground (the default) or PriorityNormal: how
	// the host's own work competes with the processes it captures.
	Priority string
	// Outputs holds at least one output: a file without output blocks
	// gets one stdout output in text format.
	Outputs []Output
	// Modules are in file order; their names are unique.
	Modules []Module
	// Metrics is nil without a metrics block.
	Metrics *Metrics
}

// Output is one output block.
type Output struct {
	Kind   string // OutputStdout, OutputFile or OutputOTLP
	Path   string // set for OutputFile only
	Format string // FormatText, FormatJSON or FormatProtobuf; not for OutputOTLP
	// OTLP is set for OutputOTLP only.
	OTLP *OTLP
	// Rotate is set for an OutputFile with a rotate block only.
	Rotate *Rotate
	// DeclRange covers `output "kind"`; it is the zero Range for the
	// output added when the file has none.
	DeclRange hcl.Range
}

// Module is one module block. Its config block is kept unevaluated until
// DecodeConfig is given the plugin's schema. A Module is safe for
// concurrent use by several goroutines once Parse has returned.
type Module struct {
	Name   string
	Common sdk.Common
	// LabelRange covers the quoted name; DeclRange covers `module "name"`.
	LabelRange, DeclRange hcl.Range

	attrs       hcl.Attributes  // the host-owned attributes present
	config      *hclsyntax.Body // nil without a config block
	configRange hcl.Range       // the `config` keyword
	ctx         *hcl.EvalContext
}

var fileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "plugin_dir"}, {Name: "priority"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "output", LabelNames: []string{"kind"}},
		{Type: "module", LabelNames: []string{"name"}},
		{Type: "metrics"},
	},
}

var outputSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "path"}, {Name: "format"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "rotate"}},
}

var moduleSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "pid"}, {Name: "uid"}, {Name: "comm"}, {Name: "btf_file"}, {Name: "buffer_kib"},
		{Name: "cgroup"}, {Name: "container"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "config"}},
}

// Parse reads the configuration src, named filename in diagnostics. It
// checks syntax, structure and the settings the host owns; module config
// blocks are left to Module.DecodeConfig. The File is nil only when src
// is not valid HCL syntax; otherwise it holds what could be read, and
// the diagnostics say whether it may be used.
func Parse(filename string, src []byte) (*File, hcl.Diagnostics) {
	hf, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	content, ds := hf.Body.Content(fileSchema)
	diags = append(diags, ds...)

	ctx := evalContext()
	f := &File{Filename: filename, Source: src}
	if attr, ok := content.Attributes["plugin_dir"]; ok {
		s, ok, ds := evalString(attr, ctx)
		diags = append(diags, ds...)
		switch {
		case ok && s == "":
			diags = append(diags, attrDiag(attr, ctx, "Invalid attribute value",
				`"plugin_dir" must not be empty; remove it to use the default.`))
		case ok:
			f.PluginDir = s
			f.PluginDirRange = attr.Expr.Range()
		}
	}

	f.Priority = PriorityBackground
	if attr, ok := content.Attributes["priority"]; ok {
		s, ok, ds := evalString(attr, ctx)
		diags = append(diags, ds...)
		switch {
		case ok && (s == PriorityBackground || s == PriorityNormal):
			f.Priority = s
		case ok:
			diags = append(diags, attrDiag(attr, ctx, "Invalid attribute value",
				fmt.Sprintf(`"priority" must be %q (the host's own work uses idle CPU time while it keeps up) or %q, not %q.`,
					PriorityBackground, PriorityNormal, s)))
		}
	}

	seenModule := map[string]hcl.Range{}
	seenOutput := map[string]hcl.Range{}
	for _, block := range content.Blocks {
		switch block.Type {
		case "output":
			out, ds := parseOutput(block, ctx)
			diags = append(diags, ds...)
			if out == nil {
				continue
			}
			key := out.Kind
			switch out.Kind {
			case OutputFile:
				key = "file " + filepath.Clean(out.Path)
			case OutputOTLP:
				key = "otlp " + out.OTLP.Endpoint
			}
			if prev, dup := seenOutput[key]; dup {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate output",
					Detail:   fmt.Sprintf("The same output is already declared at %s; every event would be written twice.", pos(prev)),
					Subject:  out.DeclRange.Ptr(),
				})
				continue
			}
			seenOutput[key] = out.DeclRange
			f.Outputs = append(f.Outputs, *out)
		case "metrics":
			if f.Metrics != nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate metrics block",
					Detail:   fmt.Sprintf("A metrics block is already declared at %s.", pos(f.Metrics.DeclRange)),
					Subject:  block.DefRange.Ptr(),
				})
				continue
			}
			m, ds := parseMetrics(block, ctx)
			diags = append(diags, ds...)
			f.Metrics = m
		case "module":
			m, ds := parseModule(block, ctx)
			diags = append(diags, ds...)
			if m == nil {
				continue
			}
			if prev, dup := seenModule[m.Name]; dup {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate module",
					Detail:   fmt.Sprintf("A module %q is already declared at %s; module names must be unique.", m.Name, pos(prev)),
					Subject:  m.LabelRange.Ptr(),
				})
				continue
			}
			seenModule[m.Name] = m.LabelRange
			f.Modules = append(f.Modules, *m)
		}
	}
	if len(f.Outputs) == 0 {
		f.Outputs = []Output{{Kind: OutputStdout, Format: FormatText}}
	}
	return f, diags
}

func parseOutput(block *hcl.Block, ctx *hcl.EvalContext) (*Output, hcl.Diagnostics) {
	out := &Output{Kind: block.Labels[0], Format: FormatText, DeclRange: block.DefRange}
	if out.Kind == OutputOTLP {
		return parseOTLP(block, ctx)
	}
	content, diags := block.Body.Content(outputSchema)
	if out.Kind != OutputStdout && out.Kind != OutputFile {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unknown output kind",
			Detail:   fmt.Sprintf("An output is %q, %q or %q, not %q.", OutputStdout, OutputFile, OutputOTLP, out.Kind),
			Subject:  block.LabelRanges[0].Ptr(),
		})
	}
	ok := !diags.HasErrors()
	if attr, present := content.Attributes["format"]; present {
		s, valid, ds := evalString(attr, ctx)
		diags = append(diags, ds...)
		switch {
		case valid && s != FormatText && s != FormatJSON && s != FormatProtobuf:
			diags = append(diags, attrDiag(attr, ctx, "Invalid attribute value",
				fmt.Sprintf(`"format" must be one of %s, %s, %s, not %q.`, FormatText, FormatJSON, FormatProtobuf, s)))
			ok = false
		case valid:
			out.Format = s
		case ds.HasErrors():
			ok = false
		}
	}
	for i, block := range content.Blocks {
		switch {
		case out.Kind != OutputFile:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported block type",
				Detail:   "Only a file output rotates.",
				Subject:  block.DefRange.Ptr(),
			})
			ok = false
		case i > 0:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate rotate block",
				Detail:   fmt.Sprintf("This output already has a rotate block at %s.", pos(content.Blocks[0].DefRange)),
				Subject:  block.DefRange.Ptr(),
			})
			ok = false
		default:
			r, ds := parseRotate(block, ctx)
			diags = append(diags, ds...)
			if r == nil {
				ok = false
			}
			out.Rotate = r
		}
	}
	attr, hasPath := content.Attributes["path"]
	switch {
	case out.Kind == OutputStdout && hasPath:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unsupported argument",
			Detail:   `A stdout output has no "path".`,
			Subject:  attr.NameRange.Ptr(),
		})
		ok = false
	case out.Kind == OutputFile && !hasPath:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing required argument",
			Detail:   `A file output needs "path", the file events are appended to.`,
			Subject:  block.DefRange.Ptr(),
		})
		ok = false
	case out.Kind == OutputFile:
		s, valid, ds := evalString(attr, ctx)
		diags = append(diags, ds...)
		switch {
		case valid && s == "":
			diags = append(diags, attrDiag(attr, ctx, "Invalid attribute value", `"path" must not be empty.`))
			ok = false
		case valid:
			out.Path = s
		default:
			ok = false
		}
	}
	if !ok {
		return nil, diags
	}
	return out, diags
}

func parseModule(block *hcl.Block, ctx *hcl.EvalContext) (*Module, hcl.Diagnostics) {
	m := &Module{
		Name:       block.Labels[0],
		LabelRange: block.LabelRanges[0],
		DeclRange:  block.DefRange,
		ctx:        ctx,
	}
	var diags hcl.Diagnostics
	if !validModuleName(m.Name) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid module name",
			Detail:   fmt.Sprintf("%q is not a plugin name: a name starts with a letter and holds only letters, digits, '_' and '-'.", m.Name),
			Subject:  m.LabelRange.Ptr(),
		})
	}
	content, ds := block.Body.Content(moduleSchema)
	diags = append(diags, ds...)
	m.attrs = content.Attributes

	if attr, ok := content.Attributes["pid"]; ok {
		n, ok, ds := evalInt(attr, ctx, 0, math.MaxUint32)
		diags = append(diags, ds...)
		if ok {
			m.Common.PID = uint32(n)
		}
	}
	if attr, ok := content.Attributes["uid"]; ok {
		n, ok, ds := evalInt(attr, ctx, 0, math.MaxUint32)
		diags = append(diags, ds...)
		if ok {
			m.Common.UID = uint32(n)
		}
	}
	if attr, ok := content.Attributes["comm"]; ok {
		s, ok, ds := evalString(attr, ctx)
		diags = append(diags, ds...)
		if ok && len(s) > MaxCommLen {
			diags = append(diags, attrDiag(attr, ctx, "Invalid attribute value",
				fmt.Sprintf(`"comm" is at most %d bytes long (the kernel truncates command names), not %d.`, MaxCommLen, len(s))))
		} else if ok {
			m.Common.Comm = s
		}
	}
	if attr, ok := content.Attributes["btf_file"]; ok {
		s, ok, ds := evalString(attr, ctx)
		diags = append(diags, ds...)
		if ok {
			m.Common.BTFFile = s
		}
	}
	if attr, ok := content.Attributes["buffer_kib"]; ok {
		n, ok, ds := evalInt(attr, ctx, 0, MaxBufferKiB)
		diags = append(diags, ds...)
		if ok && n != 0 && (n < MinBufferKiB || n&(n-1) != 0) {
			diags = append(diags, attrDiag(attr, ctx, "Invalid attribute value",
				fmt.Sprintf(`"buffer_kib" must be 0 (the module's default) or a power of two of at least %d, not %d.`, MinBufferKiB, n)))
		} else if ok {
			m.Common.BufferKiB = uint32(n)
		}
	}

	diags = append(diags, parseCgroupFilter(m, content.Attributes, ctx)...)

	for _, cb := range content.Blocks {
		if m.config != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate config block",
				Detail:   fmt.Sprintf("This module already has a config block at %s.", pos(m.configRange)),
				Subject:  cb.DefRange.Ptr(),
			})
			continue
		}
		body, ok := cb.Body.(*hclsyntax.Body)
		if !ok {
			// Parse only ever builds hclsyntax bodies.
			panic(fmt.Sprintf("config: block body is %T, not *hclsyntax.Body", cb.Body))
		}
		m.config, m.configRange = body, cb.DefRange
	}
	return m, diags
}

func validModuleName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if i == 0 && !letter {
			return false
		}
		if !letter && (r < '0' || r > '9') && !strings.ContainsRune("_-", r) {
			return false
		}
	}
	return true
}

// pos formats the start of r as FILE:LINE:COL.
func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
