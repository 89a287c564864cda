package sdk

import (
	"errors"
	"fmt"
	"strings"
)

// Severity of a Diagnostic.
type Severity uint8

const (
	SeverityError Severity = iota + 1
	SeverityWarning
)

// Diagnostic is a problem with a module's settings. The host shows it at
// the position of Attribute in the user's HCL file (or of the module block
// when Attribute is empty).
type Diagnostic struct {
	Severity  Severity
	Summary   string
	Detail    string
	Attribute string
}

// Errorf returns an error diagnostic about attribute.
func Errorf(attribute, summary, format string, args ...any) Diagnostic {
	return Diagnostic{Severity: SeverityError, Summary: summary, Detail: fmt.Sprintf(format, args...), Attribute: attribute}
}

// Diagnostics is a list of Diagnostic; it is an error when it holds an
// error diagnostic, so Init may return it as one.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

func (ds Diagnostics) Error() string {
	parts := make([]string, 0, len(ds))
	for _, d := range ds {
		s := d.Summary
		if d.Attribute != "" {
			s = d.Attribute + ": " + s
		}
		if d.Detail != "" {
			s += ": " + d.Detail
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// AsDiagnostics turns an error returned by Init into diagnostics: a
// Diagnostics error as it is, any other error as one error diagnostic.
func AsDiagnostics(err error) Diagnostics {
	if err == nil {
		return nil
	}
	var ds Diagnostics
	if errors.As(err, &ds) {
		return ds
	}
	return Diagnostics{{Severity: SeverityError, Summary: "Invalid module settings", Detail: err.Error()}}
}
