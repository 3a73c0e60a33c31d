/*
 * focus_row.c - decoding one FOCUS 1.x cost row (event_kinds.h,
 * docs/events.md "FOCUS rows").
 *
 * Job: our field names (the FOCUS column names) or a mapping profile ->
 * struct focus_row, or one reject reason. The message is read through
 * mapping.c's token tree; then the row's rules: the cost column chosen by
 * focus.cost_column present (missing_field), BillingCurrency USD when
 * given (invalid_currency), ChargeCategory present, |amount| at most
 * events.max_cost_usd (invalid_cost), team/project from the Tags keys
 * focus.team_tag / focus.project_tag, else the unattributed label.
 *
 * Thread-safety: a decoder belongs to one thread (event.h); the strings of
 * the row stay valid until the next decode on it.
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

/* Tags[key] as a label into *out (left as is when absent). */
static enum reject_reason tag_label(struct event_decoder *d, uint32_t tags, const char *key,
                                    struct label_value *out)
{
    long i = decode_member_string(d, tags, key, strlen(key));
    if (i == -1)
        return REJECT_NONE;
    if (i == -2)
        return REJECT_DUPLICATE_FIELD;
    if (i == -3)
        return REJECT_WRONG_TYPE;
    struct jtok *t = &d->doc.tok[i];
    t->flags |= JT_LABEL;
    enum reject_reason r =
        decode_check_label(d, t->ptr, t->len, (t->flags & JT_HIGH) != 0, (t->flags & JT_NUL) != 0);
    if (r)
        return r;
    if (t->len) {
        out->ptr = t->ptr;
        out->len = t->len;
    }
    return REJECT_NONE;
}

enum reject_reason focus_row_decode(struct event_decoder *d, const struct field_mapping *m,
                                    const char *buf, size_t len, struct focus_row *out)
{
    struct fval v[FF_COUNT];
    memset(out, 0, sizeof *out);
    if (!m)
        m = d->native[EVENT_KIND_FOCUS];
    if (field_mapping_kind(m) != EVENT_KIND_FOCUS)
        return REJECT_WRONG_TYPE;
    enum reject_reason r = decode_mapped_fields(d, m, buf, len, v);
    const char *un = d->limits.unattributed_label;
    size_t un_len = d->unattributed_len;
    out->team.ptr = out->project.ptr = un;
    out->team.len = out->project.len = (uint32_t)un_len;
    /* The tags' labels are read before the text check's verdict is final:
     * decode_mapped_fields ran it already, so only field errors remain. */
    if (!r && v[FF_TAGS].present) {
        const char *team_tag = d->limits.focus_team_tag ? d->limits.focus_team_tag : "team";
        const char *project_tag =
            d->limits.focus_project_tag ? d->limits.focus_project_tag : "project";
        if (!(r = tag_label(d, v[FF_TAGS].tok, team_tag, &out->team)))
            r = tag_label(d, v[FF_TAGS].tok, project_tag, &out->project);
    }
    if (r)
        return r;
    const struct fval *cost =
        &v[d->limits.focus_effective_cost ? FF_EFFECTIVE_COST : FF_BILLED_COST];
    if (!cost->present || !v[FF_CHARGE_CATEGORY].present || !v[FF_CHARGE_CATEGORY].str.len)
        return REJECT_MISSING_FIELD;
    if (v[FF_CURRENCY].present &&
        (v[FF_CURRENCY].str.len != 3 || memcmp(v[FF_CURRENCY].str.ptr, "USD", 3) != 0))
        return REJECT_INVALID_CURRENCY;
    out->amount_nanos = cost->s;
    out->charge_category = v[FF_CHARGE_CATEGORY].str;
    set_label(&out->service, &v[FF_SERVICE], "unknown", 7);
    set_label(&out->provider, &v[FF_PROVIDER], "unknown", 7);
    set_label(&out->sub_account, &v[FF_SUB_ACCOUNT], "unknown", 7);
    if (v[FF_RESOURCE_ID].present)
        out->resource_id = v[FF_RESOURCE_ID].str;
    out->has_timestamp = v[FF_PERIOD_START].present;
    out->timestamp_ms = v[FF_PERIOD_START].ms;
    return REJECT_NONE;
}
