/* fleet.c - server.conf, the defaults `init` leaves for `serve`. */
#include "fleet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "files.h"

int fleet_config_read(const char *dir, fleet_config *out) {
  out->port = FLEET_DEFAULT_PORT;
  snprintf(out->host, sizeof out->host, "127.0.0.1");
  out->device_key = PKI_KEY_EC256;
  char *path = path_join(dir, FLEET_CONFIG), *text = NULL;
  if (!path) return -1;
  int rc = file_read(path, &text, NULL);
  if (rc == -ENOENT) {
    free(path);
    return 0;
  }
  if (rc < 0) {
    fprintf(stderr, "ota-server: %s: %s\n", path, strerror(-rc));
    free(path);
    return -1;
  }
  int line_no = 0, result = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    line_no++;
    if (line[0] == '#' || line[0] == '\0') continue;
    char *eq = strchr(line, '=');
    if (!eq) {
      fprintf(stderr, "ota-server: %s:%d: expected key=value\n", path, line_no);
      result = -1;
      break;
    }
    *eq = '\0';
    const char *key = line, *value = eq + 1;
    char *end = NULL;
    if (strcmp(key, "port") == 0) {
      long port = strtol(value, &end, 10);
      if (end == value || *end || port < 1 || port > 65535) {
        fprintf(stderr, "ota-server: %s:%d: bad port\n", path, line_no);
        result = -1;
        break;
      }
      out->port = (int)port;
    } else if (strcmp(key, "host") == 0) {
      snprintf(out->host, sizeof out->host, "%s", value);
    } else if (strcmp(key, "device_key") == 0) {
      if (pki_key_type_parse(value, &out->device_key) != 0) {
        fprintf(stderr, "ota-server: %s:%d: device_key must be ec256 or rsa2048\n", path, line_no);
        result = -1;
        break;
      }
    } /* unknown keys: written by a newer version, ignored */
  }
  free(text);
  free(path);
  return result;
}

int fleet_config_write(const char *dir, const fleet_config *c) {
  char *path = path_join(dir, FLEET_CONFIG), *text = NULL;
  if (!path) return -ENOMEM;
  int n = asprintf(&text,
                   "# Defaults for `ota-server serve`, written by `ota-server init`.\n"
                   "port=%d\nhost=%s\ndevice_key=%s\n",
                   c->port, c->host, pki_key_type_name(c->device_key));
  int rc = n < 0 ? -ENOMEM : file_write(path, text, (size_t)n, 0644);
  free(text);
  free(path);
  return rc;
}

int fleet_exists(const char *dir) {
  char *path = path_join(dir, FLEET_SERVER_CA_CRT);
  int exists = path && access(path, F_OK) == 0;
  free(path);
  return exists;
}
