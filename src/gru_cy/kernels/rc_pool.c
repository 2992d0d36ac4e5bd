/* The thread pool of rc_pool.h, on POSIX threads. Without them (MSVC) every
 * job runs on the calling thread alone. */

#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L     /* clock_gettime, sigset_t in a strict C mode too */
#endif
#include "rc_pool.h"

struct rc_team {
    int size;
    rc_group all;
};

static volatile int rc_threads = 1;

int gru_cy_get_num_threads(void)
{
    return rc_threads;
}

void gru_cy_set_num_threads(int n)
{
    rc_threads = n < 1 ? 1 : n > RC_MAX_THREADS ? RC_MAX_THREADS : n;
}

#if defined(_WIN32) || !(defined(__GNUC__) || defined(__clang__))

/* ---- no threads ----------------------------------------------------------- */

void rc_run(int nthreads, rc_job_fn fn, void *arg)
{
    rc_team solo;
    (void)nthreads;
    solo.size = 1;
    rc_group_init(&solo.all, 1, 0);
    fn(arg, &solo, 0);
}

int rc_team_size(const rc_team *team) { return team->size; }
void rc_team_sync(rc_team *team) { (void)team; }
void rc_group_init(rc_group *g, int n, int id)
{
    g->count = 0;
    g->gen = 0;
    g->sleepers = 0;
    g->n = n;
    g->id = id;
}
void rc_group_sync(rc_group *g) { (void)g; }
void rc_set_spin_us(int us) { (void)us; }
int rc_spin_us(void) { return 0; }
int rc_pool_workers(void) { return 0; }

#else

#include <pthread.h>
#include <signal.h>
#include <time.h>

#define LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

/* Everything that sleeps sleeps on one condition variable: sleeping is the
 * rare path (after the spin), and every wake-up re-checks its condition. */
static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

static int spin_ns = 50000;         /* how long a waiter spins */

void rc_set_spin_us(int us)
{
    STORE(&spin_ns, us < 0 ? 0 : us * 1000);
}

int rc_spin_us(void)
{
    return LOAD(&spin_ns) / 1000;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void wake_all(void)
{
    pthread_mutex_lock(&mtx);
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mtx);
}

/* Wait until *word != seen: spin, then sleep (counting itself in
 * *sleepers, so that whoever changes *word knows to wake it). */
static void wait_change(volatile int *word, int seen, volatile int *sleepers)
{
    if (LOAD(word) != seen)
        return;
    const int budget = LOAD(&spin_ns);
    if (budget > 0) {
        long long start = now_ns();
        for (;;) {
            for (int i = 0; i < 64; i++) {
                if (LOAD(word) != seen)
                    return;
                CPU_RELAX();
            }
            if (now_ns() - start > budget)
                break;
        }
    }
    pthread_mutex_lock(&mtx);
    ADD(sleepers, 1);
    while (LOAD(word) == seen)
        pthread_cond_wait(&cond, &mtx);
    ADD(sleepers, -1);
    pthread_mutex_unlock(&mtx);
}

/* Wait until *word == 0, the same way. */
static void wait_zero(volatile int *word, volatile int *sleepers)
{
    const int budget = LOAD(&spin_ns);
    if (LOAD(word) == 0)
        return;
    if (budget > 0) {
        long long start = now_ns();
        for (;;) {
            for (int i = 0; i < 64; i++) {
                if (LOAD(word) == 0)
                    return;
                CPU_RELAX();
            }
            if (now_ns() - start > budget)
                break;
        }
    }
    pthread_mutex_lock(&mtx);
    ADD(sleepers, 1);
    while (LOAD(word) != 0)
        pthread_cond_wait(&cond, &mtx);
    ADD(sleepers, -1);
    pthread_mutex_unlock(&mtx);
}

void rc_group_init(rc_group *g, int n, int id)
{
    g->count = 0;
    g->gen = 0;
    g->sleepers = 0;
    g->n = n;
    g->id = id;
}

void rc_group_sync(rc_group *g)
{
    if (g->n <= 1)
        return;
    int gen = LOAD(&g->gen);
    if (ADD(&g->count, 1) == g->n) {
        STORE(&g->count, 0);
        ADD(&g->gen, 1);
        if (LOAD(&g->sleepers) > 0)
            wake_all();
        return;
    }
    wait_change(&g->gen, gen, &g->sleepers);
}

int rc_team_size(const rc_team *team)
{
    return team->size;
}

void rc_team_sync(rc_team *team)
{
    rc_group_sync(&team->all);
}

/* ---- the pool ---------------------------------------------------------------- */

static pthread_t workers[RC_MAX_THREADS];
static volatile int n_workers;          /* started */
static volatile int busy;               /* a job holds the pool */
static volatile int job_gen;            /* bumped to start a job */
static volatile int pending;            /* workers still in the job */
static volatile int worker_sleepers, caller_sleepers;
static rc_job_fn job_fn;
static void *job_arg;
static rc_team job_team;
static int atfork_done;
static volatile int start_gen[RC_MAX_THREADS];

/* Every started worker takes part in every job's accounting (pending counts
 * them all; those beyond the team's size only acknowledge it), so that no
 * worker can still be reading one job's parameters when the next is set. */
static void *worker_main(void *p)
{
    const int rank = (int)(size_t)p;
    /* The generation before this worker's first job (set before it
     * started), not whatever job_gen holds when the thread gets going. */
    int seen = LOAD(&start_gen[rank]);
    for (;;) {
        wait_change(&job_gen, seen, &worker_sleepers);
        seen = LOAD(&job_gen);
        if (rank < job_team.size)
            job_fn(job_arg, &job_team, rank);
        if (ADD(&pending, -1) == 0 && LOAD(&caller_sleepers) > 0)
            wake_all();
    }
    return NULL;
}

/* In a child after fork only the forking thread exists: forget the workers
 * (the next threaded job starts new ones) and any job the parent ran. */
static void after_fork_child(void)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    mtx = m;
    cond = c;
    n_workers = 0;
    busy = 0;
    pending = 0;
    worker_sleepers = 0;
    caller_sleepers = 0;
}

/* Start workers until n exist (as many as can be); the pool is held. */
static void start_workers(int n)
{
    if (!atfork_done) {
        pthread_atfork(NULL, NULL, after_fork_child);
        atfork_done = 1;
    }
    if (n > RC_MAX_THREADS - 1)
        n = RC_MAX_THREADS - 1;
    sigset_t all, old;
    sigfillset(&all);
    /* Workers block every signal: Python handles them on its own thread. */
    pthread_sigmask(SIG_BLOCK, &all, &old);
    while (n_workers < n) {
        int rank = n_workers + 1;
        STORE(&start_gen[rank], LOAD(&job_gen));
        if (pthread_create(&workers[n_workers], NULL, worker_main, (void *)(size_t)rank) != 0)
            break;
        pthread_detach(workers[n_workers]);
        n_workers = n_workers + 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int rc_pool_workers(void)
{
    return LOAD(&n_workers);
}

void rc_run(int nthreads, rc_job_fn fn, void *arg)
{
    int expected = 0;
    if (nthreads <= 1
            || !__atomic_compare_exchange_n(&busy, &expected, 1, 0, __ATOMIC_SEQ_CST,
                                            __ATOMIC_SEQ_CST)) {
        rc_team solo;
        solo.size = 1;
        rc_group_init(&solo.all, 1, 0);
        fn(arg, &solo, 0);
        return;
    }
    if (n_workers < nthreads - 1)
        start_workers(nthreads - 1);
    int size = nthreads < n_workers + 1 ? nthreads : n_workers + 1;
    job_fn = fn;
    job_arg = arg;
    job_team.size = size;
    rc_group_init(&job_team.all, size, 0);
    STORE(&pending, n_workers);
    ADD(&job_gen, 1);
    if (LOAD(&worker_sleepers) > 0)
        wake_all();
    fn(arg, &job_team, 0);
    wait_zero(&pending, &caller_sleepers);
    STORE(&busy, 0);
}

#endif
