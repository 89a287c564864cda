package config

import (
	"fmt"
	"math/big"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

// evalContext returns the context every expression of a file is evaluated
// in: no variables, the functions env and file_exists.
func evalContext() *hcl.EvalContext {
	return &hcl.EvalContext{
		Functions: map[string]function.Function{
			"env":         envFunc,
			"file_exists": fileExistsFunc,
		},
	}
}

var envFunc = function.New(&function.Spec{
	Description: "Returns the value of the environment variable name, or an empty string when it is not set.",
	Params:      []function.Parameter{{Name: "name", Type: cty.String}},
	Type:        function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.StringVal(os.Getenv(args[0].AsString())), nil
	},
})

var fileExistsFunc = function.New(&function.Spec{
	Description: "Reports whether path names an existing file or directory.",
	Params:      []function.Parameter{{Name: "path", Type: cty.String}},
	Type:        function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		_, err := os.Stat(args[0].AsString())
		return cty.BoolVal(err == nil), nil
	},
})

// evalAttr evaluates attr and converts the result to want. A null result is
// returned as a null value of want: the caller treats it as absent.
func evalAttr(attr *hcl.Attribute, ctx *hcl.EvalContext, want cty.Type) (cty.Value, hcl.Diagnostics) {
	v, diags := attr.Expr.Value(ctx)
	if diags.HasErrors() {
		return cty.NullVal(want), diags
	}
	if v.IsNull() {
		return cty.NullVal(want), diags
	}
	if !v.IsWhollyKnown() {
		return cty.NullVal(want), append(diags, attrDiag(attr, ctx, "Invalid attribute value",
			fmt.Sprintf("The value of %q must be known when the file is read.", attr.Name)))
	}
	cv, err := convert.Convert(v, want)
	if err != nil {
		return cty.NullVal(want), append(diags, attrDiag(attr, ctx, "Incorrect attribute value type",
			fmt.Sprintf("Inappropriate value for attribute %q: %s.", attr.Name, err)))
	}
	if want.IsListType() {
		for it := cv.ElementIterator(); it.Next(); {
			if _, ev := it.Element(); ev.IsNull() {
				return cty.NullVal(want), append(diags, attrDiag(attr, ctx, "Invalid attribute value",
					fmt.Sprintf("The list %q must not contain null.", attr.Name)))
			}
		}
	}
	return cv, diags
}

// evalInt evaluates attr as a whole number in [lo, hi]. ok is false when
// the attribute is null or invalid.
func evalInt(attr *hcl.Attribute, ctx *hcl.EvalContext, lo, hi int64) (n int64, ok bool, diags hcl.Diagnostics) {
	v, diags := evalAttr(attr, ctx, cty.Number)
	if v.IsNull() {
		return 0, false, diags
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		return 0, false, append(diags, attrDiag(attr, ctx, "Invalid attribute value",
			fmt.Sprintf("%q must be a whole number.", attr.Name)))
	}
	n, acc := bf.Int64()
	if acc != big.Exact || n < lo || n > hi {
		return 0, false, append(diags, attrDiag(attr, ctx, "Invalid attribute value",
			fmt.Sprintf("%q must be between %d and %d, not %s.", attr.Name, lo, hi, bf.Text('f', -1))))
	}
	return n, true, diags
}

// evalString evaluates attr as a string. ok is false when the attribute is
// null or invalid.
func evalString(attr *hcl.Attribute, ctx *hcl.EvalContext) (s string, ok bool, diags hcl.Diagnostics) {
	v, diags := evalAttr(attr, ctx, cty.String)
	if v.IsNull() {
		return "", false, diags
	}
	return v.AsString(), true, diags
}

// attrDiag returns an error diagnostic about the value of attr.
func attrDiag(attr *hcl.Attribute, ctx *hcl.EvalContext, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity:    hcl.DiagError,
		Summary:     summary,
		Detail:      detail,
		Subject:     attr.Expr.Range().Ptr(),
		Expression:  attr.Expr,
		EvalContext: ctx,
	}
}
