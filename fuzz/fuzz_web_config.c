/*
 * fuzz_web_config.c - libFuzzer target for the --web.config.file loader
 * and the Authorization header check, both outside input (an operator's
 * file; any client's header). An input starting with "A:" is an
 * Authorization header checked against a fixed one-user config (bcrypt
 * cost 4); anything else is a web config, loaded without file access
 * (inline cert/key only). Every refusal must say "fuzz.yml:line:col:";
 * a loaded config must hold what the HTTP server relies on.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fixed[] =
    "basic_auth_users:\n  alice: '$2b$04$xj7zfVq2H8tCO7fTMavURe.uMFmmoSu0tzgr./CX8PAle9j.seKoO'\n";

static void check_header(const uint8_t *data, size_t size)
{
    static struct web_config *wc;
    char err[256];
    if (!wc && web_config_parse(fixed, strlen(fixed), "fixed", NULL, &wc, err, sizeof(err)) != 0)
        abort();
    char *h = malloc(size + 1);
    if (!h)
        return;
    memcpy(h, data, size);
    h[size] = '\0'; /* MHD hands over a NUL-terminated value */
    enum web_auth a = web_config_authorize(wc, h);
    /* the only right answer is alice:secret */
    if (a == WEB_AUTH_OK && !strstr(h, "YWxpY2U6c2VjcmV0"))
        abort();
    free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 2 && data[0] == 'A' && data[1] == ':') {
        check_header(data + 2, size - 2);
        return 0;
    }
    struct web_config *wc = NULL;
    char err[512];
    unsigned line, col;
    int rc = web_config_parse((const char *)data, size, "fuzz.yml", NULL, &wc, err, sizeof(err));
    if (rc == -EINVAL) {
        if (wc || sscanf(err, "fuzz.yml:%u:%u:", &line, &col) != 2 || line == 0 || col == 0)
            abort(); /* every refusal must say where */
        return 0;
    }
    if (rc == -ENOMEM)
        return 0;
    if (rc != 0 || !wc)
        abort();
    if (web_config_tls(wc) &&
        (!web_config_cert_pem(wc) || !web_config_key_pem(wc) ||
         strncmp(web_config_tls_priorities(wc), "NORMAL:-VERS-ALL:+VERS-TLS1.", 28) != 0))
        abort();
    for (size_t i = 0; i < web_config_header_count(wc); i++) {
        const char *n, *v;
        web_config_header(wc, i, &n, &v);
        if (strpbrk(v, "\r\n"))
            abort(); /* header injection */
    }
    /* no credentials never pass when users exist */
    if (web_config_authorize(wc, NULL) !=
        (web_config_user_count(wc) ? WEB_AUTH_MISSING : WEB_AUTH_OK))
        abort();
    web_config_unref(wc);
    return 0;
}
