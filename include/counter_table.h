/*
 * counter_table.h - one metric family's labeled counters: a hash table of
 * series, each an atomic 64-bit integer, written by many threads at once.
 *
 * Adding to an existing series is a lock-free probe plus one relaxed atomic
 * add. Creating a series takes the table's insert mutex (the rare path).
 * Readers (the scrape thread rendering) never lock: they walk an
 * append-only list of published series. Series are never freed before the
 * table, so a reader can't hold a dangling pointer. Past max_series, new
 * label sets all land in one overflow series whose labels are "__overflow__",
 * so totals stay exact.
 *
 * Thread-safety: every function is thread-safe except counter_table_new and
 * counter_table_free, which the owner calls with no other thread inside.
 */
#ifndef AI_FINOPS_COUNTER_TABLE_H
#define AI_FINOPS_COUNTER_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COUNTER_TABLE_MAX_LABELS 16
#define COUNTER_OVERFLOW_VALUE   "__overflow__"

struct label_value {
    const char *ptr;
    uint32_t len;
};

struct counter_table;
struct counter_series;

/* label_names are copied. Returns NULL on allocation failure. */
struct counter_table *counter_table_new(const char *const *label_names, size_t label_count,
                                        size_t max_series);
void counter_table_free(struct counter_table *table);

/*
 * Finds or creates the series for values[label_count]; never NULL: past the
 * cap (or if memory runs out) it returns the overflow series.
 */
struct counter_series *counter_table_get(struct counter_table *table,
                                         const struct label_value *values);

/* The series' identity hash (stable across processes, runs and byte
 * orders): what a restarted process compares with a commit's held series.
 * It is label_set_hash of each value's label_hash. */
uint64_t counter_table_hash(const struct counter_table *table, const struct label_value *values);

/* The hash of one label value (XXH3-64 of its bytes). Callers that look up
 * several tables with the same values hash each value once and combine. */
uint64_t label_hash(const char *ptr, size_t len);

/* The identity hash of a label set from its values' label_hash, in label
 * order. Two sets that differ in exactly one value whose label_hash
 * differs never collide (each step is a bijection of the running hash). */
uint64_t label_set_hash(const uint64_t *value_hashes, size_t count);

/* counter_table_get for a caller that has the set's hash already; hash
 * must equal counter_table_hash(table, values). */
struct counter_series *counter_table_get_hashed(struct counter_table *table,
                                                const struct label_value *values, uint64_t hash);

/* Lock-free; relaxed ordering because a sum needs no ordering with other
 * memory, only atomicity. */
void counter_series_add(struct counter_series *series, uint64_t delta);

/*
 * Tags the series this thread creates from now on with where the event
 * that created them came from (a Kafka partition's id and offset), so a
 * scrape that shows a new series for the first time can say which offsets
 * it did not make visible yet. Thread-local and cheap: call per message.
 * A series later added to from another origin is marked spread.
 */
void counter_table_set_origin(uint32_t origin, int64_t offset);

/* counter_table_get + counter_series_add. */
void counter_table_add(struct counter_table *table, const struct label_value *values,
                       uint64_t delta);

size_t counter_table_label_count(const struct counter_table *table);
const char *counter_table_label_name(const struct counter_table *table, size_t i);
size_t counter_table_series_count(const struct counter_table *table);
/* Increments that went to the overflow series, and label sets turned away. */
uint64_t counter_table_overflow_adds(const struct counter_table *table);

struct counter_view {
    struct label_value labels[COUNTER_TABLE_MAX_LABELS];
    uint64_t value;
    int64_t created_ms; /* wall-clock creation time, for OpenMetrics _created */
    bool overflow;
    bool first_sight; /* shown as 0 because this viewer had not seen it */
    uint32_t origin;  /* see counter_table_set_origin; 0 when unknown */
    int64_t origin_offset;
    bool spread;                   /* also added to from another origin (e.g. a second partition) */
    uint64_t hash;                 /* of the label values: counter_table_hash */
    struct counter_series *series; /* for counter_table_mark_shown */
};

/*
 * Calls visit(view, ctx) for each published series in creation order, then
 * for the overflow series if anything was added to it. Stops early and
 * returns the callback's value if it returns non-zero.
 *
 * viewer is a bit naming who reads (one per Prometheus replica), or 0. A
 * series that viewer has never been shown is shown as 0 the first time:
 * Prometheus's increase() ignores a new series' first sample, so serving
 * the real value first would hide that money forever. From the next read
 * on it shows its value.
 */
typedef int (*counter_visit_fn)(const struct counter_view *view, void *ctx);
int counter_table_foreach(const struct counter_table *table, uint32_t viewer,
                          counter_visit_fn visit, void *ctx);
/* The same, but a first sight is only reported (value 0, first_sight
 * set), not recorded: the caller records it with counter_table_mark_shown
 * once the viewer really got it (a scrape that fails or times out must
 * show the series as 0 again). Series are never freed while the table
 * lives, so view->series stays valid until counter_table_free. */
int counter_table_foreach_peek(const struct counter_table *table, uint32_t viewer,
                               counter_visit_fn visit, void *ctx);
void counter_table_mark_shown(struct counter_series *series, uint32_t viewer);

/* Bytes allocated for the table's bookkeeping and series (not malloc's own
 * overhead), for the memory-per-series figure. */
size_t counter_table_memory_bytes(const struct counter_table *table);

#endif
