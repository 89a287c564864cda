# The configuration `ecaphost run` uses when it is given no file:
# capture the command lines typed into bash, print them as text.
output "stdout" {
  format = "text"
}

module "bash" {}
