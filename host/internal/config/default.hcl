# The configuration `ecaphost run` uses when it is given no file: the
# commands typed into bash and the plaintext of every OpenSSL connection
# (HTTP decoded), as text on stdout.
output "stdout" {
  format = "text"
}

module "bash" {}

module "openssl" {}
