/* test_walk.c - the metadata walk (uptane/walk.h), data-driven: every directory under
 * tests/data/walk/ is one case (made by make_cases.py there). A case is one or more rounds
 * walked in order on the same trusted state; each round's directory holds the documents
 * the two repositories serve (a missing file answers 404) and `expect`: the documents the
 * walk must ask for, in order, then its verdict. The walk is fed straight from the files:
 * no server, no store, no loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "uptane/walk.h"

#define MAX_CASES 128

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) {
    buf[n] = 0;
    *len = (size_t)n;
  }
  return buf;
}

/* Appends a line to the transcript. */
static void say(char *out, size_t n, const char *fmt, ...) {
  size_t used = strlen(out);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out + used, n - used, fmt, ap);
  va_end(ap);
  used = strlen(out);
  if (used + 1 < n) strcat(out, "\n");
}

/* Walks one round: what the walk asked for and its verdict, one line each. */
static void walk_round(const char *round, uptane_director *dir, uptane_image *img,
                       const uptane_ecu *ecu, char *out, size_t n) {
  uptane_walk w;
  update_target target;
  uptane_walk_begin(&w, dir, img, ecu, 1, &target);
  for (int steps = 0; steps < 64; steps++) {
    time_t now = time(NULL);
    switch (uptane_walk_next(&w, now)) {
    case UPTANE_WALK_FETCH: {
      const char *repo = w.repo == UPTANE_REPO_DIRECTOR ? "director" : "image";
      char path[1024];
      snprintf(path, sizeof(path), "%s/%s/%s", round, repo, w.path);
      size_t len = 0;
      char *doc = read_file(path, &len);
      if (!doc) {
        say(out, n, "%s %s absent", repo, w.path);
        if (!uptane_walk_absent(&w)) {
          say(out, n, "refused 404 %s %s", repo, w.path);
          return;
        }
        continue;
      }
      say(out, n, "%s %s", repo, w.path);
      assert_true(len <= w.cap);
      int rc = uptane_walk_feed(&w, doc, len, now);
      free(doc);
      if (rc) {
        say(out, n, "failed %s", uptane_fail_name(w.err.fail));
        return;
      }
      continue;
    }
    case UPTANE_WALK_ASSIGNED:
      assert_non_null(w.assigned);
      uptane_walk_into_image(&w);
      continue;
    case UPTANE_WALK_NO_UPDATE: say(out, n, "no_update"); return;
    case UPTANE_WALK_UPDATE:
      assert_string_equal(target.name, w.assigned);
      assert_true(target.length > 0 && target.sha256[0]);
      say(out, n, "update %s", target.name);
      return;
    case UPTANE_WALK_FAILED: say(out, n, "failed %s", uptane_fail_name(w.err.fail)); return;
    }
  }
  fail_msg("the walk did not end in 64 steps");
}

static void run_case(void **state) {
  const char *dir = *state;
  char path[1024], serial[80] = "", hwid[80] = "";
  snprintf(path, sizeof(path), "%s/ecu", dir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  assert_int_equal(fscanf(f, "%79s %79s", serial, hwid), 2);
  fclose(f);
  uptane_ecu ecu = {serial, hwid};
  uptane_director d;
  uptane_image img;
  uptane_director_init(&d);
  uptane_image_init(&img);
  int rounds = 0;
  for (int r = 1;; r++) {
    char round[1024];
    snprintf(round, sizeof(round), "%s/round%d", dir, r);
    snprintf(path, sizeof(path), "%s/expect", round);
    size_t len;
    char *expect = read_file(path, &len);
    if (!expect) break;
    char got[4096] = "";
    walk_round(round, &d, &img, &ecu, got, sizeof(got));
    if (strcmp(got, expect) != 0)
      print_message("%s:\n--- expected\n%s--- walked\n%s", round, expect, got);
    assert_string_equal(got, expect);
    free(expect);
    rounds++;
  }
  assert_true(rounds > 0);
  uptane_director_free(&d);
  uptane_image_free(&img);
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const struct CMUnitTest *)a)->name, ((const struct CMUnitTest *)b)->name);
}

int main(void) {
  const char *data = getenv("OTAD_TEST_DATA");
  char root[1024];
  snprintf(root, sizeof(root), "%s/walk", data ? data : "tests/data");
  DIR *dh = opendir(root);
  if (!dh) {
    fprintf(stderr, "test_walk: cannot open %s (set OTAD_TEST_DATA)\n", root);
    return 1;
  }
  static struct CMUnitTest tests[MAX_CASES];
  static char paths[MAX_CASES][1024];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(dh)) && n < MAX_CASES) {
    if (e->d_name[0] == '.') continue;
    snprintf(paths[n], sizeof(paths[n]), "%s/%s", root, e->d_name);
    char ecu[1100];
    snprintf(ecu, sizeof(ecu), "%s/ecu", paths[n]);
    FILE *f = fopen(ecu, "r");
    if (!f) continue; /* make_cases.py */
    fclose(f);
    tests[n] = (struct CMUnitTest){
        .name = strdup(e->d_name), .test_func = run_case, .initial_state = paths[n]};
    n++;
  }
  closedir(dh);
  if (n < 20) {
    fprintf(stderr, "test_walk: only %zu cases under %s\n", n, root);
    return 1;
  }
  qsort(tests, n, sizeof(tests[0]), by_name);
  return _cmocka_run_group_tests("walk", tests, n, NULL, NULL);
}
