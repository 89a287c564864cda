package sdk

import (
	"fmt"
	"sort"
	"strings"
)

// Type is the type of a config attribute.
type Type uint8

const (
	TypeString Type = iota + 1
	TypeNumber      // a whole number
	TypeBool
	TypeStringList
)

func (t Type) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeNumber:
		return "number"
	case TypeBool:
		return "bool"
	case TypeStringList:
		return "list of string"
	}
	return "unknown"
}

// Schema declares the attributes of a module's `config` block. The host
// parses and type-checks HCL against it; the module sees plain values.
type Schema struct {
	Attributes []Attribute
}

// Attribute declares one attribute of a config block.
type Attribute struct {
	Name        string
	Type        Type
	Required    bool
	Description string
	// Default is used when the attribute is absent; nil means the zero
	// value of Type. It must hold a value of Type (string, int64, bool or
	// []string).
	Default any
	// OneOf, when set, lists the values a string attribute may take.
	OneOf []string
}

// Lookup returns the attribute called name.
func (s Schema) Lookup(name string) (Attribute, bool) {
	for _, a := range s.Attributes {
		if a.Name == name {
			return a, true
		}
	}
	return Attribute{}, false
}

// Validate checks the schema itself: names unique and non-empty, types
// known, defaults of the declared type.
func (s Schema) Validate() error {
	seen := map[string]bool{}
	for _, a := range s.Attributes {
		if a.Name == "" {
			return fmt.Errorf("schema: attribute with empty name")
		}
		if seen[a.Name] {
			return fmt.Errorf("schema: attribute %q declared twice", a.Name)
		}
		seen[a.Name] = true
		if a.Type < TypeString || a.Type > TypeStringList {
			return fmt.Errorf("schema: attribute %q has unknown type %d", a.Name, a.Type)
		}
		if a.Default != nil && !valueHasType(a.Default, a.Type) {
			return fmt.Errorf("schema: attribute %q: default %v (%T) is not a %s", a.Name, a.Default, a.Default, a.Type)
		}
	}
	return nil
}

func valueHasType(v any, t Type) bool {
	switch v.(type) {
	case string:
		return t == TypeString
	case int64:
		return t == TypeNumber
	case bool:
		return t == TypeBool
	case []string:
		return t == TypeStringList
	}
	return false
}

// Config holds a module's evaluated `config` values by attribute name. The
// host fills every attribute of the schema (defaults included), so the
// getters return the zero value only for attributes the schema lacks.
type Config map[string]any

// String returns the string attribute name.
func (c Config) String(name string) string { v, _ := c[name].(string); return v }

// Number returns the number attribute name.
func (c Config) Number(name string) int64 { v, _ := c[name].(int64); return v }

// Bool returns the bool attribute name.
func (c Config) Bool(name string) bool { v, _ := c[name].(bool); return v }

// StringList returns the list attribute name.
func (c Config) StringList(name string) []string { v, _ := c[name].([]string); return v }

// WithDefaults returns c with every schema attribute that c lacks set to
// its default (or the zero value of its type).
func (c Config) WithDefaults(s Schema) Config {
	out := Config{}
	for k, v := range c {
		out[k] = v
	}
	for _, a := range s.Attributes {
		if _, ok := out[a.Name]; ok {
			continue
		}
		if a.Default != nil {
			out[a.Name] = a.Default
			continue
		}
		switch a.Type {
		case TypeString:
			out[a.Name] = ""
		case TypeNumber:
			out[a.Name] = int64(0)
		case TypeBool:
			out[a.Name] = false
		case TypeStringList:
			out[a.Name] = []string(nil)
		}
	}
	return out
}

// Check reports what in c does not fit s: unknown attributes, values of the
// wrong type, missing required attributes, strings outside OneOf.
func (c Config) Check(s Schema) Diagnostics {
	var diags Diagnostics
	names := make([]string, 0, len(c))
	for k := range c {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		a, ok := s.Lookup(k)
		if !ok {
			diags = append(diags, Errorf(k, "Unsupported argument", "this module has no config attribute %q", k))
			continue
		}
		if !valueHasType(c[k], a.Type) {
			diags = append(diags, Errorf(k, "Incorrect attribute value type", "%q must be a %s", k, a.Type))
			continue
		}
		if sv, ok := c[k].(string); ok && len(a.OneOf) > 0 && !contains(a.OneOf, sv) {
			diags = append(diags, Errorf(k, "Invalid value", "%q must be one of %s, not %q", k, strings.Join(a.OneOf, ", "), sv))
		}
	}
	for _, a := range s.Attributes {
		if _, ok := c[a.Name]; a.Required && !ok {
			diags = append(diags, Errorf("", "Missing required argument", "the config attribute %q is required", a.Name))
		}
	}
	return diags
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
