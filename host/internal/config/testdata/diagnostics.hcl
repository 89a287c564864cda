module "bash" {
	pid  = "x"
  uid  = -1
  comm = "a-command-name-that-is-too-long"
  config {
    mode = "fancy"
    libs = [
      "a",
      null,
    ]
  }
}

module "bash" {}
output "file" {}
