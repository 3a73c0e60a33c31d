/*
 * fuzz_config.c - libFuzzer target for the YAML configuration loader, the
 * parser of an operator-supplied file. Any input must yield either success
 * or an error message that starts with "name:line:col:"; nothing may leak
 * or crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct exporter_config cfg;
    char err[1024] = "";
    config_init_defaults(&cfg);
    int rc = config_load_buffer(&cfg, "fuzz.yaml", (const char *)data, size, err, sizeof(err));
    if (rc != 0) {
        unsigned line, col;
        if (sscanf(err, "fuzz.yaml:%u:%u:", &line, &col) != 2 || line == 0 || col == 0)
            abort(); /* every error must say where */
    }
    config_free(&cfg);
    return 0;
}
