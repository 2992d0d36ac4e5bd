/* gru_cy's thread pool: one per process, started lazily, kept between
 * calls, reset in a child process after fork.
 *
 * A job runs on a team of threads: the calling thread (rank 0) and workers
 * of the pool. Its function splits the work by rank so that each output
 * element is computed by exactly one thread (the products' chains never
 * cross threads), so results do not depend on the team's size. Team members
 * meet at barriers (rc_team_sync) that spin briefly and then sleep, and so
 * do idle workers: a pool with nothing to do uses no CPU.
 *
 * The pool runs one job at a time. A call that finds it busy (another
 * Python thread's call holds it) runs its job on its own thread alone,
 * rather than waiting behind the other call's barriers. */
#ifndef GRU_CY_RC_POOL_H
#define GRU_CY_RC_POOL_H

#define RC_MAX_THREADS 256

typedef struct rc_team rc_team;

/* fn(arg, team, rank) runs once on each rank 0 .. size - 1 of the team. */
typedef void (*rc_job_fn)(void *arg, rc_team *team, int rank);

/* Run fn on a team of up to nthreads threads (fewer when the pool is busy
 * or cannot start threads); returns when every rank has returned. */
void rc_run(int nthreads, rc_job_fn fn, void *arg);

/* The team's size and a barrier of all its ranks. */
int rc_team_size(const rc_team *team);
void rc_team_sync(rc_team *team);

/* A barrier of a subgroup of a team (ranks that split into groups, e.g. the
 * two directions of a bidirectional layer): n members, one object shared by
 * them, set up with rc_group_init by one member before any waits (the
 * team's sync orders that). */
typedef struct {
    volatile int count;
    volatile int gen;
    volatile int sleepers;
    int n;
    int id;             /* the wait slot (condition variable) it sleeps on */
} rc_group;
void rc_group_init(rc_group *g, int n, int id);
void rc_group_sync(rc_group *g);

/* Microseconds a waiting thread spins before it sleeps (tuning: the
 * benchmarks; 0 sleeps at once). */
void rc_set_spin_us(int us);
int rc_spin_us(void);

/* The threads a call may use (1 until set). Exported under these names so
 * that threadpoolctl can read and limit it like any native thread pool. */
int gru_cy_get_num_threads(void);
void gru_cy_set_num_threads(int n);

/* Worker threads the pool has started (0 before the first threaded job, and
 * again in a child process after fork). */
int rc_pool_workers(void);

#endif
