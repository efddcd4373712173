#include <config.h>
/* node_gate: one thread at a time inside a connection's gate; a thread at
 * another connection's gate (another stripe) is not held up; NULL is no
 * connection and gates nothing; the services table hands modules the same
 * gate. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "core/modules.h"
#include "core/node_gate.h"
#include "tests/unit/testlib.h"

struct entrant {
    void *conn;
    atomic_bool inside;
};

static void *enter_and_leave(void *opaque)
{
    struct entrant *e = opaque;
    vf_node_gate_enter(e->conn);
    atomic_store(&e->inside, true);
    vf_node_gate_leave(e->conn);
    return NULL;
}

/* Whether the entrant got in within ms milliseconds. */
static bool got_in(struct entrant *e, int ms)
{
    for (int i = 0; i < ms; i++) {
        if (atomic_load(&e->inside))
            return true;
        usleep(1000);
    }
    return atomic_load(&e->inside);
}

START_TEST(test_one_thread_at_a_time)
{
    static char conn[64];
    struct entrant e = {.conn = conn};
    pthread_t t;
    vf_node_gate_enter(conn);
    ck_assert_int_eq(pthread_create(&t, NULL, enter_and_leave, &e), 0);
    ck_assert_msg(!got_in(&e, 200), "a second thread entered a held gate");
    vf_node_gate_leave(conn);
    ck_assert_msg(got_in(&e, 5000), "the second thread did not enter once the gate was left");
    pthread_join(t, NULL);
}
END_TEST

START_TEST(test_other_connection_passes)
{
    /* 64 bytes apart in one page: other stripes. */
    static char conns[2][64] __attribute__((aligned(128)));
    struct entrant e = {.conn = conns[1]};
    pthread_t t;
    vf_node_gate_enter(conns[0]);
    ck_assert_int_eq(pthread_create(&t, NULL, enter_and_leave, &e), 0);
    ck_assert_msg(got_in(&e, 5000), "a held gate held up another connection's");
    pthread_join(t, NULL);
    vf_node_gate_leave(conns[0]);
}
END_TEST

START_TEST(test_null_gates_nothing)
{
    struct entrant e = {.conn = NULL};
    pthread_t t;
    vf_node_gate_enter(NULL);
    ck_assert_int_eq(pthread_create(&t, NULL, enter_and_leave, &e), 0);
    ck_assert(got_in(&e, 5000));
    pthread_join(t, NULL);
    vf_node_gate_leave(NULL);
}
END_TEST

START_TEST(test_modules_share_the_gate)
{
    static char conn[64];
    const struct vf_core *core = vf_core_services();
    struct entrant e = {.conn = conn};
    pthread_t t;
    ck_assert(VF_CORE_HAS(core, node_gate_leave));
    core->node_gate_enter(conn);
    ck_assert_int_eq(pthread_create(&t, NULL, enter_and_leave, &e), 0);
    ck_assert_msg(!got_in(&e, 200), "the core's gate let a thread past a module's hold");
    core->node_gate_leave(conn);
    ck_assert(got_in(&e, 5000));
    pthread_join(t, NULL);
}
END_TEST

static Suite *node_gate_suite(void)
{
    const struct vf_test_case cases[] = {
        {"one_thread_at_a_time", test_one_thread_at_a_time},
        {"other_connection_passes", test_other_connection_passes},
        {"null_gates_nothing", test_null_gates_nothing},
        {"modules_share_the_gate", test_modules_share_the_gate},
    };
    return vf_test_suite("node_gate", cases, sizeof cases / sizeof cases[0]);
}

int main(void)
{
    return vf_test_run(node_gate_suite());
}
