/* mp.h - several processes on one store, for the multi-process suites (test_mp_*.c): client
 * processes that are this same program re-executed (`--mp-child`), driven over a
 * socketpair by a small command protocol, so each is a fresh process with no inherited
 * runtime; an owner that may be this process or a child; and waits for the owner's figures
 * to come back. A failed check in a child makes it exit non-zero with a message on stderr.
 *
 * A suite's main is `if (mp_is_child(argc, argv)) return mp_child_main(argv);` and then
 * `return mp_run(suite, cases);`, whose fixture makes a private socket directory (so
 * parallel runs never meet) before the first test and removes it after the last. */
#ifndef SHOAL_TEST_MP_H
#define SHOAL_TEST_MP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "check.h"

enum mp_op {
    MP_ATTACH = 1,     /* -> rc */
    MP_INIT,           /* a=store bytes (0: 64 MiB) b=1: spill to s -> rc; publishes the name */
    MP_SHUTDOWN,       /* -> rc */
    MP_EXIT,           /* _exit(0) without detaching, no reply */
    MP_PUT,            /* a=len b=who c=seq -> rc, a=ref */
    MP_CREATE,         /* a=len -> rc, a=ref (unsealed; its buffer is kept) */
    MP_FILL_SEAL,      /* a=ref b=who c=seq -> rc */
    MP_GET,            /* a=ref b=who c=seq d=len -> rc (-100: other bytes); a=address */
    MP_GET_TIMEOUT,    /* a=ref b=timeout ns -> rc, a=len */
    MP_WAIT,           /* a=ref b=timeout ns -> rc (shoal_wait's count or code) */
    MP_RETAIN,         /* a=ref -> rc */
    MP_RELEASE,        /* a=ref -> rc */
    MP_INFO,           /* -> rc, a=bytes_used, b=objects_live */
    MP_WRITE_FILE,     /* a=ref s=path -> rc, a=done ref */
    MP_PUT_FILE,       /* a=offset b=len s=path -> rc, a=ref */
    MP_SUBMIT,         /* -> rc */
    MP_CHURN,          /* a=seed b=max live c=max len d=flags: reply 0 at once, then put /
                          create+seal / get / retain / release for ever (until killed) */
    MP_SETUID,         /* a=uid (also gid) -> rc (0 or -errno) */
    MP_TOUCH,          /* a=ref b=who c=seq d=len: re-read the pointer the last MP_GET of a
                          returned (it must not fault, the owner may be gone) -> rc (-100:
                          other bytes) */
    MP_USER = 64,      /* suite-defined ops from here on (mp_child_hook) */
};

#define MP_CHURN_PUT_ONLY 1u   /* MP_CHURN flag: no create+seal */
/* The object an MP_CHURN child (pid) was retaining or releasing when it was killed, 0 if
 * none; call after reaping it. That one reference may have leaked, as shoal.h documents. */
uint64_t mp_churn_suspect(pid_t pid);
/* n 8-byte words of file path mapped shared (created and zeroed with create): words that
 * spawned children and the parent both see. NULL on failure. */
_Atomic uint64_t *mp_shared_words(const char *path, size_t n, bool create);

struct mp_cmd { uint64_t code, a, b, c, d; char s[256]; };
struct mp_rep { int64_t rc; uint64_t a, b; char msg[256]; };

struct mp_child { pid_t pid; int fd; };

/* The store name of this run's current test, and its socket directory. */
extern char mp_name[48];
extern char mp_dir[64];

/* In a child: ops >= MP_USER go here (NULL: unknown op). Set it before mp_child_main. */
extern void (*mp_child_hook)(const struct mp_cmd *m, struct mp_rep *r);

bool mp_is_child(int argc, char **argv);
int  mp_child_main(char **argv);
/* A fresh store name for the next owner. */
void mp_new_name(void);

/* Start a child (not attached) / a child attached to mp_name (the attach is checked). */
struct mp_child mp_spawn(void);
struct mp_child mp_attached(void);
/* One command; rc -999 when the child died (its stderr says why). */
struct mp_rep mp_call(struct mp_child *c, uint64_t code, uint64_t a, uint64_t b, uint64_t cc,
                      uint64_t d);
struct mp_rep mp_call_s(struct mp_child *c, uint64_t code, uint64_t a, uint64_t b,
                        const char *s);
/* Write or read exactly n bytes on fd (EINTR retried); 0, or -1 on an error or EOF. */
int  mp_xfer(int fd, void *p, size_t n, int writing);
/* mp_name's socket path into out (n bytes); -1 when it does not fit. */
int  mp_sock_path(char *out, size_t n);
/* A raw connection to mp_name's socket (receive timeout 10 s), -1 when it fails. */
int  mp_raw_connect(void);
/* Send a command without waiting for its answer (MP_EXIT, a call another thread awaits). */
int  mp_send(struct mp_child *c, uint64_t code, uint64_t a, uint64_t b, uint64_t cc, uint64_t d);
int  mp_recv(struct mp_child *c, struct mp_rep *r);
/* SIGKILL it and reap it; returns the exit status as mp_reap. */
int  mp_kill(struct mp_child *c);
/* Close the channel and wait: its exit code, or 128 + signal. */
int  mp_reap(struct mp_child *c);

/* This process as the owner of a new published store (64 MiB, 2 workers), started with
 * test_start (lib/check.h): the test fails when shoal_init does. */
void mp_owner_start(void);
void mp_owner_start_cfg(shoal_config c);

/* Wait (bounded) until the owner's figures are (bytes, objects); 1 when they are. Never a
 * timing assertion: the deadline only keeps a broken build from hanging. */
int  mp_settle(uint64_t bytes, uint64_t objects, const char *what);

/* How many client deaths (or detaches) the owner in this process has processed; wait
 * (bounded: only a hang fails) until it has processed more than `seen`: 1 when it has. */
uint64_t mp_deaths(void);
int  mp_death_processed(uint64_t seen);

/* shoal_test_run_fixture over the cases ($SHOAL_TEST_CASE picks some, as in every suite):
 * the fixture makes the private socket directory (SHOAL_RUN_DIR, inherited by the
 * children; mp_dir) and turns SIGPIPE off before the first test, and removes the directory
 * and all in it after the last. */
int  mp_run(const char *suite, const shoal_test_case *cases);

uint64_t mp_ref_bits(shoal_ref r);
shoal_ref mp_bits_ref(uint64_t v);
uint64_t mp_now_ns(void);

#endif
