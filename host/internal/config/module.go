package config

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// DecodeConfig evaluates the module's config block against schema, the
// schema the module's plugin declared. Attributes the schema lacks, values
// of the wrong type, missing required attributes and strings outside OneOf
// are diagnostics pointing at the offending text. The returned Config
// holds every attribute of schema, defaults filled in; it is only
// meaningful when the diagnostics hold no error.
func (m *Module) DecodeConfig(schema sdk.Schema) (sdk.Config, hcl.Diagnostics) {
	if err := schema.Validate(); err != nil {
		return nil, hcl.Diagnostics{m.LabelDiag("Invalid plugin schema",
			fmt.Sprintf("The plugin %q declares an invalid config schema (a bug in the plugin): %s.", m.Name, err))}
	}
	cfg := sdk.Config{}
	var diags hcl.Diagnostics
	if m.config == nil {
		for _, a := range schema.Attributes {
			if a.Required {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Missing required argument",
					Detail:   fmt.Sprintf("The module %q needs a config block with the attribute %q.", m.Name, a.Name),
					Subject:  m.DeclRange.Ptr(),
				})
			}
		}
		return cfg.WithDefaults(schema), diags
	}

	bs := &hcl.BodySchema{}
	for _, a := range schema.Attributes {
		bs.Attributes = append(bs.Attributes, hcl.AttributeSchema{Name: a.Name})
	}
	content, diags := m.config.Content(bs)
	for _, a := range schema.Attributes {
		attr, present := content.Attributes[a.Name]
		var (
			v     any
			ok    bool
			attrD hcl.Diagnostics
		)
		if present {
			v, ok, attrD = m.decodeAttr(attr, a)
			diags = append(diags, attrD...)
		}
		switch {
		case ok:
			cfg[a.Name] = v
		case attrD.HasErrors():
			// Already reported.
		case a.Required:
			subject := m.configRange
			if present {
				subject = attr.Expr.Range() // set to null
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing required argument",
				Detail:   fmt.Sprintf("The config attribute %q is required, but no definition was found.", a.Name),
				Subject:  subject.Ptr(),
			})
		}
	}
	return cfg.WithDefaults(schema), diags
}

// decodeAttr evaluates attr as a value of a.Type. ok is false when the
// value is null or invalid.
func (m *Module) decodeAttr(attr *hcl.Attribute, a sdk.Attribute) (v any, ok bool, diags hcl.Diagnostics) {
	switch a.Type {
	case sdk.TypeString:
		s, ok, diags := evalString(attr, m.ctx)
		if ok && len(a.OneOf) > 0 && !slices.Contains(a.OneOf, s) {
			quoted := make([]string, len(a.OneOf))
			for i, o := range a.OneOf {
				quoted[i] = fmt.Sprintf("%q", o)
			}
			return nil, false, append(diags, attrDiag(attr, m.ctx, "Invalid attribute value",
				fmt.Sprintf("%q must be one of %s, not %q.", a.Name, strings.Join(quoted, ", "), s)))
		}
		return s, ok, diags
	case sdk.TypeNumber:
		return evalInt(attr, m.ctx, math.MinInt64, math.MaxInt64)
	case sdk.TypeBool:
		cv, diags := evalAttr(attr, m.ctx, cty.Bool)
		if cv.IsNull() {
			return nil, false, diags
		}
		return cv.True(), true, diags
	case sdk.TypeStringList:
		cv, diags := evalAttr(attr, m.ctx, cty.List(cty.String))
		if cv.IsNull() {
			return nil, false, diags
		}
		list := make([]string, 0, cv.LengthInt())
		for it := cv.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			list = append(list, ev.AsString())
		}
		return list, true, diags
	}
	// Unreachable: schema.Validate rejects unknown types.
	return nil, false, hcl.Diagnostics{attrDiag(attr, m.ctx, "Invalid plugin schema",
		fmt.Sprintf("The attribute %q has unknown type %s.", a.Name, a.Type))}
}

// LabelDiag returns an error diagnostic pointing at the module's name, for
// problems with the plugin itself: not found, failed to start, speaks no
// common API version.
func (m *Module) LabelDiag(summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  m.LabelRange.Ptr(),
	}
}

// PluginDiags maps the diagnostics a plugin returned about its settings to
// hcl diagnostics. One naming an attribute points at that attribute's
// value, looked up in the config block first, then among the common
// settings; one naming an attribute the file does not set points at the
// config block (or the module block) and says so; one naming none points
// at the module block.
func (m *Module) PluginDiags(ds sdk.Diagnostics) hcl.Diagnostics {
	out := make(hcl.Diagnostics, 0, len(ds))
	for _, d := range ds {
		hd := &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  d.Summary,
			Detail:   d.Detail,
			Subject:  m.DeclRange.Ptr(),
		}
		if d.Severity == sdk.SeverityWarning {
			hd.Severity = hcl.DiagWarning
		}
		if hd.Summary == "" {
			hd.Summary = "Invalid module settings"
		}
		if d.Attribute != "" {
			if attr := m.lookupAttr(d.Attribute); attr != nil {
				hd.Subject = attr.Expr.Range().Ptr()
				hd.Expression, hd.EvalContext = attr.Expr, m.ctx
			} else {
				if m.config != nil {
					hd.Subject = m.configRange.Ptr()
				}
				hd.Detail = fmt.Sprintf("The attribute %q, not set in this file, has its default value: %s", d.Attribute, d.Detail)
			}
		}
		out = append(out, hd)
	}
	return out
}

// lookupAttr returns the attribute name as written in the config block or
// among the common settings, or nil.
func (m *Module) lookupAttr(name string) *hcl.Attribute {
	if m.config != nil {
		if a, ok := m.config.Attributes[name]; ok {
			return a.AsHCLAttribute()
		}
	}
	return m.attrs[name]
}
