/*
 * fuzz_state.c - the state topic's record decoder (src/kafka/state.c):
 * records come from a Kafka topic anyone with write access can fill.
 * Input: a 2-byte big-endian key length, the key, then the value. A record
 * that decodes must encode back to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t key_len = (size_t)data[0] << 8 | data[1];
    if (key_len > size - 2)
        return 0;
    const uint8_t *key = data + 2, *value = key + key_len;
    size_t value_len = size - 2 - key_len;
    struct state_record r;
    if (state_decode(key, key_len, value, value_len, &r) != 0)
        return 0;
    static char buf[1 << 20];
    char val[16];
    size_t n;
    if (r.position) {
        n = state_position_key(buf, sizeof(buf), r.shard, r.shard_len);
        state_position_value(val, r.next_offset);
    } else {
        n = state_series_key(buf, sizeof(buf), r.shard, r.shard_len, r.family, r.labels,
                             r.label_count);
        state_series_value(val, r.value, r.hold_until_ms);
    }
    if (n != key_len || memcmp(buf, key, n) != 0 || memcmp(val, value, value_len) != 0)
        abort();
    return 0;
}
