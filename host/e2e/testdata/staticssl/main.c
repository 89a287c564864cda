/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A program carrying its own OpenSSL (linked with libssl.a): it waits a
 * second, then GETs argv[2] from 127.0.0.1:argv[1] over TLS and prints the
 * response. Built by the end-to-end test of node-wide discovery.
 */
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char req[512], buf[4096];
	SSL_CTX *ctx;
	SSL *ssl;
	int fd, n;

	if (argc != 3)
		return 2;
	sleep(1);
	sa.sin_port = htons((unsigned short)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return 1;
	ctx = SSL_CTX_new(TLS_client_method());
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1)
		return 1;
	snprintf(req, sizeof(req), "GET /%s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
	if (SSL_write(ssl, req, (int)strlen(req)) <= 0)
		return 1;
	while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return 0;
}
