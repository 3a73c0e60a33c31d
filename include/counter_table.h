/*
 * counter_table.h - one metric family's labeled counters: a hash table of
 * series, each an atomic 64-bit integer, written by many threads at once.
 *
 * Adding to an existing series is a lock-free probe plus one relaxed atomic
 * add. Creating a series takes the table's insert mutex (the rare path).
 * Readers (the scrape thread rendering) never lock: they walk an
 * append-only list of published series. Series are never freed before the
 * table, so a reader can't hold a dangling pointer. Past max_series, new
 * label sets all land in one overflow series whose labels are "__overflow__"
 * (in a sharded table, one per shard: every label but the last, the shard,
 * becomes "__overflow__"), so totals stay exact.
 *
 * What a reader is shown (docs/delivery.md): a series has a live value
 * (what writers added) and, in a checkpointed table, a served value (what
 * the last durable checkpoint holds, set by counter_series_publish). A
 * plain table shows the live value; a checkpointed table shows the served
 * value and hides a series until it is first published. Either way a
 * series is shown as 0 until its hold ends (created + hold_ms in a plain
 * table, the hold_until given to publish/restore in a checkpointed one):
 * Prometheus's increase() ignores a series' first sample, so a new series
 * must first be seen at 0, and how long that lasts depends on the clock,
 * not on who reads.
 *
 * Thread-safety: every function is thread-safe except counter_table_new and
 * counter_table_free, which the owner calls with no other thread inside.
 * The counter_series_* setters other than add are for one thread at a time
 * per series (the Kafka checkpointer, or the restore before its shard's
 * messages flow).
 */
#ifndef AI_FINOPS_COUNTER_TABLE_H
#define AI_FINOPS_COUNTER_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COUNTER_TABLE_MAX_LABELS 16
#define COUNTER_OVERFLOW_VALUE   "__overflow__"
/* Counters saturate: a series that reaches 2^63 units stays there (it never
 * wraps, so Prometheus never sees a false reset). Each add must be below
 * 2^54 (the events.* per-event caps keep it so); docs/events.md states how
 * long each family takes to get there. */
#define COUNTER_SATURATED (1ULL << 63)

struct label_value {
    const char *ptr;
    uint32_t len;
};

struct counter_table;
struct counter_series;

/* How a table shows its series (see the header comment). */
struct counter_table_options {
    bool checkpointed; /* show served values; hidden until first published */
    bool sharded;      /* the last label is the shard: overflow keeps it */
    int64_t hold_ms;   /* plain tables: a new series reads 0 for this long */
};

/* label_names are copied; options may be NULL (plain, no hold). Returns
 * NULL on allocation failure. */
struct counter_table *counter_table_new(const char *const *label_names, size_t label_count,
                                        size_t max_series,
                                        const struct counter_table_options *options);
void counter_table_free(struct counter_table *table);

/*
 * Finds or creates the series for values[label_count]; never NULL: past the
 * cap (or if memory runs out) it returns the overflow series.
 */
struct counter_series *counter_table_get(struct counter_table *table,
                                         const struct label_value *values);

/* The series' identity hash (stable across processes, runs and byte
 * orders): label_set_hash of each value's label_hash. */
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

/* counter_table_get_hashed for state that must never share a series (the
 * GPU interval marks): NULL instead of the overflow series when the table
 * is full or memory runs out; nothing is counted as overflow. */
struct counter_series *counter_table_get_bounded(struct counter_table *table,
                                                 const struct label_value *values, uint64_t hash);

/* CAS-max: raises the live value to v (< COUNTER_SATURATED) unless it is
 * already at least v, and returns the value it held before. Lock-free. */
uint64_t counter_series_raise(struct counter_series *series, uint64_t v);

/* Lock-free; relaxed ordering because a sum needs no ordering with other
 * memory, only atomicity. Saturates at COUNTER_SATURATED (delta < 2^54). */
void counter_series_add(struct counter_series *series, uint64_t delta);

/* The live value (what writers added so far). */
uint64_t counter_series_live(const struct counter_series *series);

/* Checkpointed tables: readers are shown `served` from now on, as 0 until
 * hold_until_ms (wall clock, ms since the epoch; 0: no hold). */
void counter_series_publish(struct counter_series *series, uint64_t served, int64_t hold_until_ms);
/* Hides the series from readers until it is published again (its shard
 * was handed to another process). */
void counter_series_hide(struct counter_series *series);
/* Sets the live value (a restore from a checkpoint, before the shard's
 * messages are applied again). */
void counter_series_set_live(struct counter_series *series, uint64_t live);
/* The checkpointer's own bookkeeping, kept beside the series: the value
 * its last durable checkpoint holds, and whether that checkpoint (or a
 * restore) ever held it. Not seen by readers. */
void counter_series_set_checkpointed(struct counter_series *series, uint64_t value);

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
    uint64_t value;     /* what a reader is shown (0 under hold) */
    int64_t created_ms; /* wall-clock creation time, for OpenMetrics _created */
    bool overflow;
    /* counter_table_foreach_all only: */
    uint64_t live;
    uint64_t checkpointed;  /* see counter_series_set_checkpointed */
    bool checkpointed_ever; /* set_checkpointed was ever called */
    bool shown;             /* readers see it (published and not hidden) */
    int64_t hold_until_ms;
    uint64_t hash;                 /* of the label values: counter_table_hash */
    struct counter_series *series; /* stays valid until counter_table_free */
};

/*
 * Calls visit(view, ctx) for each series a reader is shown, in creation
 * order, then for the overflow series (plain tables: if anything was added
 * to it). now_ms is the wall clock the holds are compared with. Stops
 * early and returns the callback's value if it returns non-zero.
 */
typedef int (*counter_visit_fn)(const struct counter_view *view, void *ctx);
int counter_table_foreach(const struct counter_table *table, int64_t now_ms, counter_visit_fn visit,
                          void *ctx);
/* Every series, shown or not, with the checkpointer's fields filled in
 * (value is the live value). For the checkpointer and restore. */
int counter_table_foreach_all(const struct counter_table *table, counter_visit_fn visit, void *ctx);

/* Bytes allocated for the table's bookkeeping and series (not malloc's own
 * overhead), for the memory-per-series figure. */
size_t counter_table_memory_bytes(const struct counter_table *table);

#endif
