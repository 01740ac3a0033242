/* test_runtime.c - the runtime of one device (device/device.c) alone: events are fired
 * into a device whose action table holds stubs that record what ran, so the dispatch
 * rules are checked without any state, server or disk but the journal file: one pending
 * event at a time and never a nested action, every transition journaled before its action,
 * a pair the table does not list refused, a NULL action, on_step closing the device, and
 * the retry timer with its give-up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "device/device.h"
#include "storage/store.h"

typedef struct fixture {
  uv_loop_t loop;
  otad_config cfg;
  device d;
  device_actions actions;
  journal *jr;
  char journal_path[64];
  char trace[1024]; /* what the stubs saw, "inspect< >inspect register< ..." */
  int depth;        /* > 0 while a stub runs: a second one inside would be nesting */
  int nested;
  int done;
  bool close_in_step;
} fixture;

static fixture *F; /* the stubs get only the device */

static void trace(const char *fmt, ...) {
  size_t used = strlen(F->trace);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(F->trace + used, sizeof(F->trace) - used, fmt, ap);
  va_end(ap);
}

static void enter(const char *name) {
  if (F->depth++) F->nested++;
  trace("%s< ", name);
}

static void leave(const char *name) {
  F->depth--;
  trace(">%s ", name);
}

/* inspect: raises zip_loaded before it returns (an answer storage gave at once). */
static void stub_inspect(device *d) {
  enter("inspect");
  device_fire(d, EV_ZIP_LOADED, "from the stub");
  leave("inspect");
}

/* register: raises two events; the second is a bug the runtime drops. */
static void stub_register(device *d) {
  enter("register");
  device_fire(d, EV_REGISTERED, NULL);
  device_fire(d, EV_REJECTED, NULL);
  leave("register");
}

static void stub_prepare_key(device *d) {
  enter("prepare_key");
  leave("prepare_key");
}

/* fail: where a give-up ends. */
static void stub_fail(device *d) {
  enter("fail");
  F->done++;
  leave("fail");
}

static void on_step(device *d, const transition *t) {
  trace("[%s] ", machine_event_name(t->event));
  if (F->close_in_step && t->action == ACT_PREPARE_KEY) device_close(d, NULL);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  F = f;
  uv_loop_init(&f->loop);
  config_init(&f->cfg);
  snprintf(f->journal_path, sizeof(f->journal_path), "/tmp/otad-test-runtime.XXXXXX");
  int fd = mkstemp(f->journal_path);
  assert_true(fd >= 0);
  close(fd);
  otad_errbuf eb = {{0}};
  f->jr = journal_open(f->journal_path, &eb);
  assert_non_null(f->jr);
  f->actions.run[ACT_INSPECT] = stub_inspect;
  f->actions.run[ACT_REGISTER] = stub_register;
  f->actions.run[ACT_PREPARE_KEY] = stub_prepare_key;
  f->actions.run[ACT_BACKOFF] = device_backoff;
  f->actions.run[ACT_FAIL] = stub_fail;
  device_opts o = {.actions = &f->actions,
                   .label = "stub",
                   .cfg = &f->cfg,
                   .loop = &f->loop,
                   .st = store_mem_open(),
                   .jr = f->jr,
                   .seed = 1,
                   .retry_base_ms = 1,
                   .retry_cap_ms = 2,
                   .max_retries = 2,
                   .quiet = !getenv("OTAD_TEST_VERBOSE"),
                   .on_step = on_step};
  device_init(&f->d, &o);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (!f->d.closing) device_close(&f->d, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  device_free(&f->d);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  journal_close(f->jr);
  unlink(f->journal_path);
  config_free(&f->cfg);
  free(f);
  return 0;
}

/* The journal as "from event to action" lines. */
static void journal_rows(fixture *f, char *out, size_t n) {
  FILE *in = fopen(f->journal_path, "r");
  assert_non_null(in);
  char line[1024];
  out[0] = 0;
  while (fgets(line, sizeof(line), in)) {
    char from[32], ev[32], to[32], act[32];
    const char *p;
#define FIELD(name, buf)                                                                           \
  p = strstr(line, "\"" name "\":\"");                                                             \
  assert_non_null(p);                                                                              \
  sscanf(p + strlen(name) + 4, "%31[^\"]", buf);
    FIELD("from", from);
    FIELD("event", ev);
    FIELD("to", to);
    FIELD("action", act);
#undef FIELD
    size_t used = strlen(out);
    snprintf(out + used, n - used, "%s %s %s %s\n", from, ev, to, act);
  }
  fclose(in);
}

/* An event raised inside an action waits until the action returns; a second one raised
 * in the same action is dropped; every transition is journaled, in order. */
static void test_one_pending_event(void **state) {
  fixture *f = *state;
  device_start(&f->d);
  assert_int_equal(f->nested, 0);
  assert_string_equal(f->trace, "[start] inspect< >inspect [zip_loaded] register< >register "
                                "[registered] prepare_key< >prepare_key ");
  assert_int_equal(f->d.state, ST_ECU_REGISTERING);
  char rows[2048];
  journal_rows(f, rows, sizeof(rows));
  assert_string_equal(rows, "unprovisioned start unprovisioned inspect\n"
                            "unprovisioned zip_loaded registering register\n"
                            "registering registered ecu_registering prepare_key\n");
}

/* A pair the table does not list changes nothing: no state, no journal row, no action. */
static void test_unknown_pair_refused(void **state) {
  fixture *f = *state;
  device_fire(&f->d, EV_DOWNLOADED, "not now");
  assert_int_equal(f->d.state, ST_UNPROVISIONED);
  assert_string_equal(f->trace, "");
  char rows[256];
  journal_rows(f, rows, sizeof(rows));
  assert_string_equal(rows, "");
}

/* An action the table leaves NULL does nothing; the transition still happens. */
static void test_null_action(void **state) {
  fixture *f = *state;
  f->actions.run[ACT_INSPECT] = NULL;
  device_start(&f->d);
  assert_int_equal(f->d.state, ST_UNPROVISIONED);
  assert_string_equal(f->trace, "[start] ");
  char rows[256];
  journal_rows(f, rows, sizeof(rows));
  assert_string_equal(rows, "unprovisioned start unprovisioned inspect\n");
}

/* on_step may close the device: the action it was about to run does not run. */
static void test_close_in_step(void **state) {
  fixture *f = *state;
  f->close_in_step = true;
  device_start(&f->d);
  assert_string_equal(f->trace, "[start] inspect< >inspect [zip_loaded] register< >register "
                                "[registered] ");
  assert_true(f->d.closing);
}

/* backoff arms the retry timer; retry runs the state's action again; after max_retries
 * failures in a row, give_up. */
static void test_retry_timer_and_give_up(void **state) {
  fixture *f = *state;
  f->actions.run[ACT_INSPECT] = NULL;
  device_start(&f->d);
  f->trace[0] = 0;
  for (int i = 0; i < 3; i++) {
    device_fail_with(&f->d, EV_TRANSIENT_ERROR, OTAD_ENET, "stub failure %d", i);
    if (f->d.state == ST_FAILED) break;
    uv_run(&f->loop, UV_RUN_ONCE); /* the retry timer fires: retry -> inspect (NULL) */
  }
  assert_int_equal(f->d.state, ST_FAILED);
  assert_int_equal(f->done, 1);
  assert_string_equal(f->trace, "[transient_error] [retry] [transient_error] [retry] "
                                "[transient_error] [give_up] fail< >fail ");
  assert_non_null(strstr(f->d.eb.msg, "gave up after 3 failed attempts: stub failure 2"));
}

int main(void) {
  log_set_level(getenv("OTAD_TEST_VERBOSE") ? LOG_DEBUG : LOG_ERROR + 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_one_pending_event, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_pair_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_null_action, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_in_step, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retry_timer_and_give_up, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
