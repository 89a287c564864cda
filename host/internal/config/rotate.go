package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Rotate is the rotate block of a file output.
type Rotate struct {
	// MaxBytes rotates the file before a write would take it past this
	// size; 0: no size limit.
	MaxBytes int64
	// MaxAge rotates the file once it is this old; 0: no age limit.
	MaxAge time.Duration
	// Keep is how many rotated files are kept; the oldest go first.
	Keep int
}

// DefaultKeep is how many rotated files are kept when keep is not set.
const DefaultKeep = 10

var rotateSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "max_mib"}, {Name: "max_age"}, {Name: "keep"}},
}

func parseRotate(block *hcl.Block, ctx *hcl.EvalContext) (*Rotate, hcl.Diagnostics) {
	r := &Rotate{Keep: DefaultKeep}
	content, diags := block.Body.Content(rotateSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	if attr, ok := content.Attributes["max_mib"]; ok {
		n, ok, ds := evalInt(attr, ctx, 1, 1<<20)
		diags = append(diags, ds...)
		if ok {
			r.MaxBytes = n << 20
		}
	}
	if attr, ok := content.Attributes["max_age"]; ok {
		s, ok, ds := evalString(attr, ctx)
		diags = append(diags, ds...)
		if ok {
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				diags = append(diags, attrDiag(attr, ctx, "Invalid attribute value",
					fmt.Sprintf(`"max_age" must be a duration such as "24h" or "30m": %v.`, err)))
			case d < time.Minute:
				diags = append(diags, attrDiag(attr, ctx, "Invalid attribute value",
					fmt.Sprintf(`"max_age" must be at least a minute, not %s.`, s)))
			default:
				r.MaxAge = d
			}
		}
	}
	if attr, ok := content.Attributes["keep"]; ok {
		n, ok, ds := evalInt(attr, ctx, 1, 10000)
		diags = append(diags, ds...)
		if ok {
			r.Keep = int(n)
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	if r.MaxBytes == 0 && r.MaxAge == 0 {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing rotation limit",
			Detail:   `A rotate block needs "max_mib", "max_age" or both.`,
			Subject:  block.DefRange.Ptr(),
		})
	}
	return r, diags
}
