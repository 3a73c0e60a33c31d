/*
 * tsan_c11_threads.c - ThreadSanitizer builds only: librdkafka starts its
 * threads with C11 thrd_create, which glibc implements without going
 * through pthread_create, so TSan never registers those threads and
 * crashes in its allocator the first time one calls an intercepted
 * function (getaddrinfo). Defining thrd_create in the executable takes
 * precedence over glibc's for librdkafka's calls (symbol interposition),
 * and starting the thread with pthread_create lets TSan see it. Joins and
 * detaches go through pthread too, or TSan reports the threads as leaked.
 * A thrd_t is a pthread_t in glibc.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

struct start {
    thrd_start_t func;
    void *arg;
};

static void *trampoline(void *p)
{
    struct start s = *(struct start *)p;
    free(p);
    /* glibc's thrd_join reads an int result back from the pointer */
    return (void *)(intptr_t)s.func(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
    struct start *s = malloc(sizeof(*s));
    if (!s)
        return thrd_nomem;
    s->func = func;
    s->arg = arg;
    int rc = pthread_create(thr, NULL, trampoline, s);
    if (rc) {
        free(s);
        return rc == ENOMEM || rc == EAGAIN ? thrd_nomem : thrd_error;
    }
    return thrd_success;
}

int thrd_join(thrd_t thr, int *res)
{
    void *value;
    if (pthread_join(thr, &value))
        return thrd_error;
    if (res)
        *res = (int)(intptr_t)value;
    return thrd_success;
}

int thrd_detach(thrd_t thr)
{
    return pthread_detach(thr) ? thrd_error : thrd_success;
}
