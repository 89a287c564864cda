package main

import (
	_ "github.com/ecaphost/ecaphost/sdk"
	_ "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
	_ "github.com/hashicorp/go-plugin"
	_ "github.com/hashicorp/hcl/v2"
	_ "github.com/hashicorp/hcl/v2/hclsyntax"
	_ "github.com/hashicorp/hcl/v2/hcldec"
	_ "github.com/zclconf/go-cty/cty"
	_ "github.com/zclconf/go-cty/cty/function"
	_ "google.golang.org/protobuf/proto"
	_ "google.golang.org/protobuf/encoding/protodelim"
)

func main() {}
