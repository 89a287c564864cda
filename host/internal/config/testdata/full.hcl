# Every setting the host owns.
plugin_dir = "/opt/ecaphost/plugins"

output "stdout" {
  format = "text"
}

output "file" {
  path   = "/var/log/ecaphost/events.jsonl"
  format = "json"
}

module "bash" {
  pid        = 1234
  uid        = 1000
  comm       = "bash"
  btf_file   = "/opt/btf/5.4.btf"
  buffer_kib = 1024
  config {
    readline_binary = "/bin/bash"
  }
}

module "openssl" {}

priority = "normal"
