/*
 * gpu_sample.c - decoding one GPU utilization sample (event_kinds.h,
 * docs/events.md "GPU utilization samples").
 *
 * Job: our field names or a mapping profile -> struct gpu_sample, or one
 * reject reason. The message is read through mapping.c's token tree (our
 * field names are the identity mapping), then the sample's own rules
 * apply: exactly one of utilization (ratio) and utilization_percent, an
 * interval of (0, 1 day], a timestamp, the GPU's node and id, and the
 * team/project fallback (the sample's, else gpu.namespace_teams by
 * namespace, else the unattributed label with the namespace as project).
 *
 * Thread-safety: a decoder belongs to one thread (event.h); the strings of
 * the sample stay valid until the next decode on it.
 */
#include <string.h>

#include "decode_internal.h"

static void set_label(struct label_value *out, const struct fval *v, const char *fallback,
                      size_t len)
{
    if (v->present && v->str.len) {
        *out = v->str;
    } else {
        out->ptr = fallback;
        out->len = (uint32_t)len;
    }
}

/* The "team/project" of a namespace in gpu.namespace_teams, if any. */
static bool namespace_team(const struct event_decoder *d, const struct label_value *ns,
                           struct label_value *team, struct label_value *project)
{
    const struct string_map *map = d->limits.gpu_namespace_teams;
    if (!map)
        return false;
    for (size_t i = 0; i < map->count; i++) {
        if (strlen(map->keys[i]) != ns->len || memcmp(map->keys[i], ns->ptr, ns->len) != 0)
            continue;
        const char *v = map->values[i], *slash = strchr(v, '/');
        if (!slash)
            return false; /* refused at start (config.c); never half-applied */
        team->ptr = v;
        team->len = (uint32_t)(slash - v);
        project->ptr = slash + 1;
        project->len = (uint32_t)strlen(slash + 1);
        return true;
    }
    return false;
}

enum reject_reason gpu_sample_decode(struct event_decoder *d, const struct field_mapping *m,
                                     const char *buf, size_t len, struct gpu_sample *out)
{
    struct fval v[GF_COUNT];
    memset(out, 0, sizeof *out);
    if (!m)
        m = d->native[EVENT_KIND_GPU_UTILIZATION];
    if (field_mapping_kind(m) != EVENT_KIND_GPU_UTILIZATION)
        return REJECT_WRONG_TYPE;
    enum reject_reason r = decode_mapped_fields(d, m, buf, len, v);
    if (r)
        return r;
    /* Required fields, in the order of the table. */
    if (!v[GF_TIMESTAMP].present)
        return REJECT_MISSING_FIELD;
    if (!v[GF_INTERVAL].present || v[GF_INTERVAL].u == 0)
        return REJECT_INVALID_INTERVAL;
    if (!v[GF_NODE].present || !v[GF_NODE].str.len || !v[GF_GPU].present || !v[GF_GPU].str.len)
        return REJECT_MISSING_FIELD;
    if (v[GF_UTILIZATION].present && v[GF_UTILIZATION_PERCENT].present)
        return REJECT_INVALID_UTILIZATION;
    if (!v[GF_UTILIZATION].present && !v[GF_UTILIZATION_PERCENT].present)
        return REJECT_MISSING_FIELD;
    if (v[GF_MEMORY_BYTES].present && v[GF_MEMORY_MIB].present)
        return REJECT_INVALID_USAGE;

    out->node = v[GF_NODE].str;
    out->gpu = v[GF_GPU].str;
    set_label(&out->gpu_type, &v[GF_GPU_TYPE], "unknown", 7);
    set_label(&out->instance_type, &v[GF_INSTANCE_TYPE], "unknown", 7);
    /* ppb: the ratio is read at 9 decimals, the percent at 7 (both capped
     * at UTIL_PPB_ONE by the field table). */
    out->utilization_ppb =
        v[GF_UTILIZATION].present ? v[GF_UTILIZATION].u : v[GF_UTILIZATION_PERCENT].u;
    out->has_memory = v[GF_MEMORY_BYTES].present || v[GF_MEMORY_MIB].present;
    out->memory_used_bytes =
        v[GF_MEMORY_BYTES].present ? v[GF_MEMORY_BYTES].u : v[GF_MEMORY_MIB].u << 20;
    out->end_unix_nanos = v[GF_TIMESTAMP].ns;
    out->interval_nanos = v[GF_INTERVAL].u;

    const char *un = d->limits.unattributed_label;
    size_t un_len = d->unattributed_len;
    bool has_ns = v[GF_NAMESPACE].present && v[GF_NAMESPACE].str.len;
    struct label_value nteam, nproject;
    if (v[GF_TEAM].present && v[GF_TEAM].str.len) {
        out->team = v[GF_TEAM].str;
        set_label(&out->project, &v[GF_PROJECT], un, un_len);
    } else if (has_ns && namespace_team(d, &v[GF_NAMESPACE].str, &nteam, &nproject)) {
        out->team = nteam;
        /* The sample's own project still wins over the map's. */
        if (v[GF_PROJECT].present && v[GF_PROJECT].str.len)
            out->project = v[GF_PROJECT].str;
        else
            out->project = nproject;
    } else {
        out->team.ptr = un;
        out->team.len = (uint32_t)un_len;
        if (v[GF_PROJECT].present && v[GF_PROJECT].str.len)
            out->project = v[GF_PROJECT].str;
        else if (has_ns)
            out->project = v[GF_NAMESPACE].str;
        else {
            out->project.ptr = un;
            out->project.len = (uint32_t)un_len;
        }
    }
    return REJECT_NONE;
}
