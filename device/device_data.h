/* device_data.h - what the device tells the server about itself, when it changes.
 *
 * Four kinds of device data (docs/protocol.md, section 4): the hardware (PUT /system_info), the
 * installed target (PUT /core/installed), the network (PUT /system_info/network, unless
 * [telemetry] report_network = false) and the effective configuration as TOML, secrets
 * redacted (POST /system_info/config, unless [telemetry] report_config = false). Each body
 * is built afresh every cycle and sent only when its SHA-256 differs from that of the last
 * body the server accepted (kept in the store, STORE_SENT_*). The builders below are pure
 * or read only small files, so the tests can run them on a fake root.
 */
#ifndef OTAD_DEVICE_DATA_H
#define OTAD_DEVICE_DATA_H

#include <stdbool.h>
#include <stddef.h>

#include "../storage/store.h"
#include "device.h"

enum device_data_kind {
  DEVICE_DATA_SYSTEM_INFO, /* hardware JSON */
  DEVICE_DATA_INSTALLED,   /* [{"name","version"}] */
  DEVICE_DATA_NETWORK,     /* {"local_ipv4","mac","hostname"} */
  DEVICE_DATA_CONFIG,      /* TOML */
  DEVICE_DATA_KINDS
};

/* "system_info", "installed", "network", "config" (the server's names); "?" otherwise. */
const char *device_data_kind_name(enum device_data_kind k);

/* The hardware as JSON text (heap; NULL when out of memory), from the files under root
 * ("" = this system: /proc/cpuinfo, /proc/meminfo, /sys/class/dmi/id, the device tree's
 * model, /etc/os-release) plus uname() and the hostname:
 * {"id":HOST,"class":"system","product","vendor","architecture","kernel","os",
 *  "cpu":{"product","count"},"memory":{"size","units":"bytes"}}; what is unknown is left out. */
char *device_data_hardware(const char *root);

/* [{"name":..,"version":..}] for the installed target, from the JSON stored as
 * STORE_INSTALLED_TARGET (NULL or unparsable: nothing installed, "[]"); the version is the
 * target's custom.version, else its name. Heap; NULL when out of memory. */
char *device_data_installed(const char *installed_json);

/* The interface of the default route in route_text (the text of /proc/net/route): the
 * lowest metric wins. False when there is none. */
bool device_data_default_iface(const char *route_text, char *ifname, size_t n);

/* {"local_ipv4","mac","hostname"} of the interface carrying the default route (root/proc/
 * net/route; else the first interface that is up, not loopback and has an IPv4 address;
 * "" for what is unknown). MAC from root/sys/class/net/IF/address. Heap; NULL no memory. */
char *device_data_network(const char *root);

/* True when body differs from the last body of kind the server accepted (as recorded in
 * st; nothing or something unreadable recorded counts as different). digest receives the
 * lower-case hex SHA-256 of body either way. */
bool device_data_changed(store *st, enum device_data_kind k, const char *body, char digest[65]);

/* Records digest as the last body of kind the server accepted. 0 or the store's error. */
int device_data_accepted(store *st, enum device_data_kind k, const char *digest, otad_errbuf *eb);

/* Sends each kind of device data (hardware, installed target, network, config) whose body
 * changed since the server last accepted it, over d->req, then calls then(d). A failure is
 * a warning and never an event: what was not accepted is sent next cycle. then() runs in
 * every case but a cancel (device_close). Needs d->upd. */
void device_data_send(device *d, void (*then)(device *d));

#endif
