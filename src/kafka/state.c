/*
 * state.c - the checkpoint records of the state topic (kafka.state_topic):
 * their binary keys and values, and which state partition holds a shard.
 * Pure functions, tested without a broker (tests/test_kafka_state.c).
 *
 * A key names one series of one shard (or the shard's position), so the
 * compacted topic keeps exactly the latest value of each; lengths are
 * explicit, so label values may hold any bytes. Integers are big-endian:
 * records written on one machine are read on any other.
 * Thread-safety: no state; any thread.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kafka_internal.h"

#define SERIES_MAGIC   "AIFS1"
#define POSITION_MAGIC "AIFP1"
#define MAGIC_LEN      5

static void put_u64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (char)(v & 0xff);
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Appends a u16 length and the bytes; false when it does not fit. */
static bool put_str(char *buf, size_t cap, size_t *at, const char *s, size_t len)
{
    if (len > 0xffff || cap - *at < 2 + len)
        return false;
    buf[(*at)++] = (char)(len >> 8);
    buf[(*at)++] = (char)(len & 0xff);
    memcpy(buf + *at, s, len);
    *at += len;
    return true;
}

static size_t key_head(char *buf, size_t cap, const char *magic, const char *shard,
                       size_t shard_len)
{
    size_t at = 0;
    if (cap < MAGIC_LEN)
        return 0;
    memcpy(buf, magic, MAGIC_LEN);
    at = MAGIC_LEN;
    return put_str(buf, cap, &at, shard, shard_len) ? at : 0;
}

size_t state_series_key(char *buf, size_t cap, const char *shard, size_t shard_len, unsigned family,
                        const struct label_value *labels, size_t label_count)
{
    size_t at = key_head(buf, cap, SERIES_MAGIC, shard, shard_len);
    if (!at || family > 255 || label_count > STATE_LABELS_MAX || cap - at < 2)
        return 0;
    buf[at++] = (char)family;
    buf[at++] = (char)label_count;
    for (size_t i = 0; i < label_count; i++)
        if (!put_str(buf, cap, &at, labels[i].ptr, labels[i].len))
            return 0;
    return at;
}

size_t state_position_key(char *buf, size_t cap, const char *shard, size_t shard_len)
{
    return key_head(buf, cap, POSITION_MAGIC, shard, shard_len);
}

void state_series_value(char out[16], uint64_t value, int64_t hold_until_ms)
{
    put_u64(out, value);
    put_u64(out + 8, (uint64_t)hold_until_ms);
}

void state_position_value(char out[8], int64_t next_offset)
{
    put_u64(out, (uint64_t)next_offset);
}

/* Reads a u16 length and points at the bytes; false past the end. */
static bool get_str(const unsigned char *k, size_t len, size_t *at, const char **s, size_t *slen)
{
    if (len - *at < 2)
        return false;
    size_t n = (size_t)k[*at] << 8 | k[*at + 1];
    *at += 2;
    if (len - *at < n)
        return false;
    *s = (const char *)k + *at;
    *slen = n;
    *at += n;
    return true;
}

int state_decode(const void *key, size_t key_len, const void *value, size_t value_len,
                 struct state_record *out)
{
    const unsigned char *k = key;
    memset(out, 0, sizeof(*out));
    if (!key || key_len < MAGIC_LEN || !value)
        return -EINVAL;
    size_t at = MAGIC_LEN;
    if (memcmp(k, POSITION_MAGIC, MAGIC_LEN) == 0) {
        out->position = true;
        if (!get_str(k, key_len, &at, &out->shard, &out->shard_len) || at != key_len ||
            value_len != 8)
            return -EINVAL;
        out->next_offset = (int64_t)get_u64(value);
        return out->next_offset >= 0 ? 0 : -EINVAL;
    }
    if (memcmp(k, SERIES_MAGIC, MAGIC_LEN) != 0)
        return -EINVAL;
    if (!get_str(k, key_len, &at, &out->shard, &out->shard_len) || key_len - at < 2 ||
        value_len != 16)
        return -EINVAL;
    out->family = k[at++];
    out->label_count = k[at++];
    if (out->label_count > STATE_LABELS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < out->label_count; i++) {
        const char *s;
        size_t n;
        if (!get_str(k, key_len, &at, &s, &n))
            return -EINVAL;
        out->labels[i] = (struct label_value){s, (uint32_t)n};
    }
    if (at != key_len)
        return -EINVAL;
    out->value = get_u64(value);
    out->hold_until_ms = (int64_t)get_u64((const unsigned char *)value + 8);
    return 0;
}

uint32_t state_shard_hash(const char *shard, size_t shard_len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < shard_len; i++)
        h = (h ^ (unsigned char)shard[i]) * 16777619u;
    return h;
}

int32_t state_partition_of(const char *shard, size_t shard_len, int partitions)
{
    uint32_t h = state_shard_hash(shard, shard_len);
    return partitions > 0 ? (int32_t)(h % (uint32_t)partitions) : 0;
}

size_t state_shard_name(char out[SHARD_MAX], const char *topic, int32_t partition)
{
    int n = snprintf(out, SHARD_MAX, "%s-%d", topic, (int)partition);
    return n < 0 ? 0 : (size_t)n >= SHARD_MAX ? SHARD_MAX - 1 : (size_t)n;
}
