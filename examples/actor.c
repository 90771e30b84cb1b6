/* actor.c - an actor: a bank account whose balance only its own calls touch, one at a time,
 * in the order they were submitted, with no lock; deposits come from several tasks at once.
 * Build against an installed shoal: cc actor.c $(pkg-config --cflags --libs shoal)
 * Usage: actor [DEPOSITS]  (default 1000) */
#include <shoal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct account { long balance, calls; };

static void account_free(void *state) { free(state); }   /* once, after the last call */

/* A method: add argument 0 to the balance and return the new balance. */
static int deposit(shoal_task *t)
{
    struct account *acc = shoal_task_actor_state(t);   /* only this call touches it now */
    const void *d;
    size_t n;
    long amount;
    if (shoal_task_arg(t, 0, &d, &n) != 0 || n != sizeof amount)
        return shoal_task_fail(t, "deposit: one long argument");
    memcpy(&amount, d, sizeof amount);
    acc->balance += amount;
    acc->calls++;
    return shoal_task_return(t, &acc->balance, sizeof acc->balance);
}

static int balance(shoal_task *t)
{
    struct account *acc = shoal_task_actor_state(t);
    long v[2] = { acc->balance, acc->calls };
    return shoal_task_return(t, v, sizeof v);
}

/* A plain task that gets the actor's handle as a VALUE and deposits 1..k from inside. */
static int client(shoal_task *t)
{
    const void *d;
    size_t n;
    shoal_actor acc;
    long k;
    if (shoal_task_arg(t, 0, &d, &n) != 0 || n != sizeof acc)
        return 1;
    memcpy(&acc, d, sizeof acc);
    if (shoal_task_arg(t, 1, &d, &n) != 0 || n != sizeof k)
        return 1;
    memcpy(&k, d, sizeof k);
    for (long i = 1; i <= k; i++) {
        shoal_arg a = SHOAL_VALUE(&i, sizeof i);
        shoal_ref r;
        if (shoal_actor_submit(acc, deposit, &a, 1, NULL, &r) != 0)
            return shoal_task_fail(t, shoal_last_error());
        shoal_release(r);   /* fire and forget: the call holds its own reference */
    }
    return 0;
}

int main(int argc, char **argv)
{
    long deposits = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    if (deposits < 4 || deposits > 10000000) {
        fprintf(stderr, "usage: actor [DEPOSITS] (4..10000000)\n");
        return 2;
    }
    struct account *acc = calloc(1, sizeof *acc);
    shoal_actor a;
    shoal_task_opts name = { .name = "account" };
    if (!acc || shoal_init(NULL) != 0 || shoal_actor_create(acc, account_free, &name, &a) != 0) {
        fprintf(stderr, "actor: %s\n", shoal_last_error());
        return 1;
    }
    /* Four client tasks deposit at once; the actor serialises them. */
    long per = deposits / 4;
    shoal_ref clients[4];
    for (int c = 0; c < 4; c++) {
        shoal_arg args[] = { SHOAL_VALUE(&a, sizeof a), SHOAL_VALUE(&per, sizeof per) };
        if (shoal_submit(client, args, 2, NULL, &clients[c]) != 0) {
            fprintf(stderr, "actor: %s\n", shoal_last_error());
            return 1;
        }
    }
    const void *d;
    size_t n;
    for (int c = 0; c < 4; c++) {
        if (shoal_get(clients[c], &d, &n) != 0) {
            fprintf(stderr, "actor: client %d: %s\n", c, shoal_last_error());
            return 1;
        }
        shoal_release(clients[c]);
    }
    /* Submitted after the clients' deposits (they were all submitted before the clients
     * returned), so it runs after every one of them. */
    shoal_ref r;
    if (shoal_actor_submit(a, balance, NULL, 0, NULL, &r) != 0 || shoal_get(r, &d, &n) != 0 ||
        n != 2 * sizeof(long)) {
        fprintf(stderr, "actor: %s\n", shoal_last_error());
        return 1;
    }
    long v[2];
    memcpy(v, d, sizeof v);
    shoal_release(r);
    long want = 4 * (per * (per + 1) / 2);
    printf("actor: %ld deposits from 4 tasks, balance %ld (want %ld)\n", v[1], v[0], want);
    shoal_actor_destroy(a);   /* account_free runs once no call is left */
    if (shoal_shutdown() != 0)
        return 1;
    return v[0] == want && v[1] == 4 * per ? 0 : 1;
}
