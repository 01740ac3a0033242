/* test_machine.c - the transition table, names, journal writing and replay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backoff.h"
#include "core/idgen.h"
#include "core/journal.h"
#include "core/machine.h"

static void test_happy_path(void **state) {
  (void)state;
  transition t;
  assert_true(machine_step(ST_UNPROVISIONED, EV_START, &t));
  assert_int_equal(t.to, ST_UNPROVISIONED);
  assert_int_equal(t.action, ACT_INSPECT);
  assert_true(machine_step(ST_UNPROVISIONED, EV_ZIP_LOADED, &t));
  assert_int_equal(t.to, ST_REGISTERING);
  assert_int_equal(t.action, ACT_REGISTER);
  assert_true(machine_step(ST_REGISTERING, EV_REGISTERED, &t));
  assert_int_equal(t.to, ST_ECU_REGISTERING);
  assert_true(machine_step(ST_ECU_REGISTERING, EV_KEY_READY, &t));
  assert_int_equal(t.action, ACT_REGISTER_ECUS);
  assert_true(machine_step(ST_ECU_REGISTERING, EV_ECUS_REGISTERED, &t));
  assert_int_equal(t.to, ST_PROVISIONED);
  assert_int_equal(t.action, ACT_FINISH);
}

static void test_failure_paths(void **state) {
  (void)state;
  transition t;
  assert_true(machine_step(ST_REGISTERING, EV_ID_TAKEN, &t));
  assert_int_equal(t.to, ST_REGISTERING);
  assert_int_equal(t.action, ACT_NEW_ID);
  assert_true(machine_step(ST_REGISTERING, EV_TRANSIENT_ERROR, &t));
  assert_int_equal(t.action, ACT_BACKOFF);
  assert_true(machine_step(ST_REGISTERING, EV_RETRY, &t));
  assert_int_equal(t.action, ACT_REGISTER);
  assert_true(machine_step(ST_REGISTERING, EV_REJECTED, &t));
  assert_int_equal(t.to, ST_FAILED);
  assert_true(machine_step(ST_UNPROVISIONED, EV_CONFIG_ERROR, &t));
  assert_int_equal(t.to, ST_FAILED);
  assert_true(machine_step(ST_ECU_REGISTERING, EV_GIVE_UP, &t));
  assert_int_equal(t.to, ST_FAILED);
  /* Failed accepts nothing; provisioned only a change of the [import] credentials and
   * the start of the update cycle. */
  for (int e = 0; e < EV__COUNT; e++) {
    assert_int_equal(machine_step(ST_PROVISIONED, (enum dev_event)e, &t),
                     e == EV_CREDENTIALS_CHANGED || e == EV_POLL);
    assert_false(machine_step(ST_FAILED, (enum dev_event)e, &t));
  }
  assert_true(machine_step(ST_PROVISIONED, EV_CREDENTIALS_CHANGED, &t));
  assert_int_equal(t.to, ST_UNPROVISIONED);
  assert_int_equal(t.action, ACT_INSPECT);
  /* DeviceCred: imported credentials go straight to the ECU; missing ones wait a cycle. */
  assert_true(machine_step(ST_UNPROVISIONED, EV_CREDENTIALS_IMPORTED, &t));
  assert_int_equal(t.to, ST_ECU_REGISTERING);
  assert_int_equal(t.action, ACT_PREPARE_KEY);
  assert_true(machine_step(ST_UNPROVISIONED, EV_IMPORT_FAILED, &t));
  assert_int_equal(t.to, ST_UNPROVISIONED);
  assert_int_equal(t.action, ACT_WAIT_CYCLE);
  /* A registered event cannot arrive before registration started. */
  assert_false(machine_step(ST_UNPROVISIONED, EV_REGISTERED, &t));
}

static void test_names_roundtrip(void **state) {
  (void)state;
  for (int s = 0; s < ST__COUNT; s++)
    assert_int_equal(machine_state_from_name(machine_state_name(s)), s);
  for (int e = 0; e < EV__COUNT; e++)
    assert_int_equal(machine_event_from_name(machine_event_name(e)), e);
  for (int a = 0; a < ACT__COUNT; a++)
    assert_int_equal(machine_action_from_name(machine_action_name(a)), a);
  assert_int_equal(machine_state_from_name("nope"), -1);
  assert_string_equal(machine_state_name((enum dev_state)99), "?");
}

/* Every state that talks to the server retries transient errors in place and can give
 * up; downloading gives up into a report, installing does no network I/O. */
static void test_every_state_can_fail(void **state) {
  (void)state;
  transition t;
  const enum dev_state talkers[] = {ST_UNPROVISIONED, ST_REGISTERING, ST_ECU_REGISTERING,
                                    ST_POLLING};
  for (size_t i = 0; i < sizeof(talkers) / sizeof(talkers[0]); i++) {
    enum dev_state s = talkers[i];
    assert_true(machine_step(s, EV_GIVE_UP, &t));
    assert_int_equal(t.to, ST_FAILED);
    assert_true(machine_step(s, EV_TRANSIENT_ERROR, &t));
    assert_int_equal(t.to, s);
    assert_true(machine_step(s, EV_RETRY, &t));
  }
}

/* The update cycle: poll, download, install, report, idle. */
static void test_update_cycle(void **state) {
  (void)state;
  transition t;
  assert_true(machine_step(ST_PROVISIONED, EV_POLL, &t));
  assert_int_equal(t.to, ST_POLLING);
  assert_int_equal(t.action, ACT_POLL);
  assert_true(machine_step(ST_POLLING, EV_NO_UPDATE, &t));
  assert_int_equal(t.action, ACT_IDLE);
  assert_true(machine_step(ST_POLLING, EV_UPDATE_AVAILABLE, &t));
  assert_int_equal(t.to, ST_DOWNLOADING);
  assert_true(machine_step(ST_DOWNLOADING, EV_DOWNLOADED, &t));
  assert_int_equal(t.to, ST_INSTALLING);
  assert_true(machine_step(ST_INSTALLING, EV_INSTALLED, &t));
  assert_int_equal(t.to, ST_POLLING);
  assert_int_equal(t.action, ACT_REPORT);
  assert_true(machine_step(ST_POLLING, EV_REPORTED, &t));
  assert_int_equal(t.action, ACT_IDLE);
  /* failures are reported, never installed */
  assert_true(machine_step(ST_POLLING, EV_VERIFICATION_FAILED, &t));
  assert_int_equal(t.to, ST_POLLING);
  assert_int_equal(t.action, ACT_REPORT);
  assert_true(machine_step(ST_DOWNLOADING, EV_DOWNLOAD_FAILED, &t));
  assert_int_equal(t.action, ACT_REPORT);
  assert_true(machine_step(ST_DOWNLOADING, EV_GIVE_UP, &t));
  assert_int_equal(t.to, ST_POLLING);
  assert_true(machine_step(ST_DOWNLOADING, EV_RETRY, &t));
  assert_int_equal(t.action, ACT_DOWNLOAD);
  assert_true(machine_step(ST_INSTALLING, EV_INSTALL_FAILED, &t));
  assert_int_equal(t.action, ACT_REPORT);
  /* a 4xx in the cycle waits for the next one (once: gives up), never a backoff storm */
  assert_true(machine_step(ST_POLLING, EV_REJECTED, &t));
  assert_int_equal(t.to, ST_POLLING);
  assert_int_equal(t.action, ACT_WAIT_CYCLE);
  assert_false(machine_step(ST_INSTALLING, EV_TRANSIENT_ERROR, &t));
  assert_false(machine_step(ST_DOWNLOADING, EV_INSTALLED, &t));
}

/* An installation that needs a reboot: reported (NEED_COMPLETION), then completed by the
 * first poll of the next run, and reported again (OK). */
static void test_reboot_completion(void **state) {
  (void)state;
  transition t;
  assert_true(machine_step(ST_INSTALLING, EV_NEED_REBOOT, &t));
  assert_int_equal(t.to, ST_POLLING);
  assert_int_equal(t.action, ACT_REPORT);
  assert_true(machine_step(ST_POLLING, EV_REBOOTED, &t));
  assert_int_equal(t.to, ST_INSTALLING);
  assert_int_equal(t.action, ACT_COMPLETE);
  assert_true(machine_step(ST_INSTALLING, EV_INSTALLED, &t));
  assert_int_equal(t.action, ACT_REPORT);
  assert_true(machine_step(ST_INSTALLING, EV_INSTALL_FAILED, &t)); /* cannot record it */
  assert_int_equal(t.action, ACT_REPORT);
  /* only the poll finds out about a reboot; nothing else completes an installation */
  for (int s = 0; s < ST__COUNT; s++) {
    assert_int_equal(machine_step((enum dev_state)s, EV_REBOOTED, &t), s == ST_POLLING);
    assert_int_equal(machine_step((enum dev_state)s, EV_NEED_REBOOT, &t), s == ST_INSTALLING);
  }
}

/* Every update state's outcome leads to a report or the next poll: no dead ends. */
static void test_update_states_lead_on(void **state) {
  (void)state;
  transition t;
  const enum dev_event installing_ends[] = {EV_INSTALLED, EV_INSTALL_FAILED, EV_NEED_REBOOT};
  for (size_t i = 0; i < 3; i++) {
    assert_true(machine_step(ST_INSTALLING, installing_ends[i], &t));
    assert_int_equal(t.to, ST_POLLING);
    assert_int_equal(t.action, ACT_REPORT);
  }
  /* the complete action runs in installing, and so does nothing else */
  for (int s = 0; s < ST__COUNT; s++)
    for (int e = 0; e < EV__COUNT; e++)
      if (machine_step((enum dev_state)s, (enum dev_event)e, &t) && t.action == ACT_COMPLETE)
        assert_int_equal(t.to, ST_INSTALLING);
}

static char *tmpfile_path(void) {
  char *p = strdup("/tmp/otad-journal-XXXXXX");
  int fd = mkstemp(p);
  assert_true(fd >= 0);
  close(fd);
  return p;
}

static void record(journal *j, const char *label, enum dev_state s, enum dev_event e) {
  transition t;
  assert_true(machine_step(s, e, &t));
  assert_int_equal(journal_record(j, label, "id-1", &t, "detail with \"quotes\"\nand newline"), 0);
}

static void test_journal_roundtrip(void **state) {
  (void)state;
  char *p = tmpfile_path();
  otad_errbuf eb;
  journal *j = journal_open(p, &eb);
  assert_non_null(j);
  record(j, "a", ST_UNPROVISIONED, EV_START);
  record(j, "b", ST_UNPROVISIONED, EV_START);
  record(j, "a", ST_UNPROVISIONED, EV_ZIP_LOADED);
  record(j, "a", ST_REGISTERING, EV_TRANSIENT_ERROR);
  record(j, "a", ST_REGISTERING, EV_RETRY);
  record(j, "b", ST_UNPROVISIONED, EV_CONFIG_ERROR);
  record(j, "a", ST_REGISTERING, EV_REGISTERED);
  record(j, "a", ST_ECU_REGISTERING, EV_KEY_READY);
  record(j, "a", ST_ECU_REGISTERING, EV_ECUS_REGISTERED);
  record(j, "a", ST_UNPROVISIONED, EV_START); /* a restart */
  record(j, "a", ST_UNPROVISIONED, EV_STORED_PROVISIONED);
  journal_close(j);

  FILE *f = fopen(p, "r");
  replay_result r;
  assert_int_equal(journal_replay(f, &r), 0);
  fclose(f);
  assert_int_equal(r.transitions, 11);
  assert_int_equal(r.devices, 2);
  assert_int_equal(r.runs, 3);
  assert_int_equal(r.final_counts[ST_PROVISIONED], 1);
  assert_int_equal(r.final_counts[ST_FAILED], 1);
  assert_false(r.torn_tail);
  unlink(p);
  free(p);
}

static int replay_text(const char *text, replay_result *r) {
  FILE *f = fmemopen((void *)text, strlen(text), "r");
  int rc = journal_replay(f, r);
  fclose(f);
  return rc;
}

#define L(dev, from, ev, to, act)                                                                  \
  "{\"t\":\"x\",\"device\":\"" dev "\",\"from\":\"" from "\",\"event\":\"" ev "\",\"to\":\"" to    \
  "\",\"action\":\"" act "\"}\n"

static void test_replay_catches_divergence(void **state) {
  (void)state;
  replay_result r;
  /* wrong target state */
  assert_int_equal(replay_text(L("a", "unprovisioned", "start", "unprovisioned", "inspect")
                                   L("a", "unprovisioned", "zip_loaded", "provisioned", "register"),
                               &r),
                   OTAD_EJOURNAL);
  assert_int_equal(r.line, 2);
  assert_non_null(strstr(r.why, "leads to 'registering'"));
  /* broken continuity */
  assert_int_equal(
      replay_text(L("a", "unprovisioned", "start", "unprovisioned", "inspect")
                      L("a", "registering", "registered", "ecu_registering", "prepare_key"),
                  &r),
      OTAD_EJOURNAL);
  assert_int_equal(r.line, 2);
  assert_non_null(strstr(r.why, "was left in 'unprovisioned'"));
  /* wrong action */
  assert_int_equal(replay_text(L("a", "unprovisioned", "start", "unprovisioned", "register"), &r),
                   OTAD_EJOURNAL);
  /* event not allowed */
  assert_int_equal(
      replay_text(L("a", "unprovisioned", "start", "unprovisioned", "inspect")
                      L("a", "unprovisioned", "ecus_registered", "provisioned", "finish"),
                  &r),
      OTAD_EJOURNAL);
  assert_non_null(strstr(r.why, "not allowed"));
  /* no start */
  assert_int_equal(replay_text(L("a", "registering", "retry", "registering", "register"), &r),
                   OTAD_EJOURNAL);
  /* malformed line in the middle */
  assert_int_equal(
      replay_text(L("a", "unprovisioned", "start", "unprovisioned", "inspect") "not json\n" L(
                      "a", "unprovisioned", "zip_loaded", "registering", "register"),
                  &r),
      OTAD_EJOURNAL);
  assert_int_equal(r.line, 2);
  /* unknown names */
  assert_int_equal(replay_text(L("a", "unprovisioned", "boot", "unprovisioned", "inspect"), &r),
                   OTAD_EJOURNAL);
}

static void test_replay_torn_tail(void **state) {
  (void)state;
  replay_result r;
  assert_int_equal(replay_text(L("a", "unprovisioned", "start", "unprovisioned",
                                 "inspect") "{\"t\":\"x\",\"device\":\"a\",\"fr",
                               &r),
                   0);
  assert_true(r.torn_tail);
  assert_int_equal(r.transitions, 1);
}

static void test_idgen(void **state) {
  (void)state;
  rng r;
  rng_seed(&r, 42);
  char a[48], b[48];
  idgen_readable(&r, a, sizeof(a));
  idgen_readable(&r, b, sizeof(b));
  assert_string_not_equal(a, b);
  assert_true(idgen_valid(a));
  /* adjective-noun-NNNNNN, lower case */
  int dashes = 0;
  for (char *p = a; *p; p++) {
    if (*p == '-')
      dashes++;
    else
      assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'));
  }
  assert_int_equal(dashes, 2);
  assert_int_equal(strlen(strrchr(a, '-') + 1), 6);
  /* same seed, same names */
  rng r2;
  rng_seed(&r2, 42);
  char c[48];
  idgen_readable(&r2, c, sizeof(c));
  assert_string_equal(a, c);
  assert_false(idgen_valid(""));
  assert_false(idgen_valid("has space"));
  assert_false(idgen_valid("slash/no"));
  assert_true(idgen_valid("device_01.a-b"));
  /* 1000 names: few collisions */
  int dup = 0;
  static char names[1000][48];
  for (int i = 0; i < 1000; i++) {
    idgen_readable(&r, names[i], 48);
    for (int k = 0; k < i; k++)
      dup += strcmp(names[i], names[k]) == 0;
  }
  assert_true(dup < 3);
}

static void test_backoff(void **state) {
  (void)state;
  backoff b;
  rng r;
  rng_seed(&r, 7);
  backoff_init(&b, 1000, 8000);
  uint32_t d1 = backoff_next(&b, &r);
  assert_in_range(d1, 500, 1000);
  uint32_t d2 = backoff_next(&b, &r);
  assert_in_range(d2, 1000, 2000);
  uint32_t d3 = backoff_next(&b, &r);
  assert_in_range(d3, 2000, 4000);
  for (int i = 0; i < 40; i++)
    assert_in_range(backoff_next(&b, &r), 4000, 8000);
  backoff_reset(&b);
  assert_in_range(backoff_next(&b, &r), 500, 1000);
  /* jitter: not all the same */
  uint32_t first = 0;
  int differ = 0;
  for (int i = 0; i < 20; i++) {
    backoff_reset(&b);
    uint32_t d = backoff_next(&b, &r);
    if (i == 0)
      first = d;
    else
      differ |= d != first;
  }
  assert_true(differ);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_happy_path),
      cmocka_unit_test(test_failure_paths),
      cmocka_unit_test(test_names_roundtrip),
      cmocka_unit_test(test_every_state_can_fail),
      cmocka_unit_test(test_update_cycle),
      cmocka_unit_test(test_reboot_completion),
      cmocka_unit_test(test_update_states_lead_on),
      cmocka_unit_test(test_journal_roundtrip),
      cmocka_unit_test(test_replay_catches_divergence),
      cmocka_unit_test(test_replay_torn_tail),
      cmocka_unit_test(test_idgen),
      cmocka_unit_test(test_backoff),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
