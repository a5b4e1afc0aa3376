/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Where a loaded callout can be found by other processes (SDK, tools).
 *
 * An instance (default "default", or $REDIRECT_CALLOUT_INSTANCE) pins its
 * records map at CALLOUT_BPFFS_DIR/<instance>/socks and its UDP flows at
 * .../udp_flows (mode 0600) and holds an
 * exclusive flock on CALLOUT_RUN_DIR/<instance>.lock for as long as it lives.
 * The lock, not the pin, says "loaded": a pin left by a killed engine is
 * stale, and the kernel drops the lock with the process.
 */
#ifndef REDIRECT_CALLOUT_PATHS_H
#define REDIRECT_CALLOUT_PATHS_H

#define CALLOUT_BPFFS_ROOT "/sys/fs/bpf"
#define CALLOUT_BPFFS_DIR CALLOUT_BPFFS_ROOT "/redirect-console"
#define CALLOUT_RUN_DIR "/run/redirect-console"
#define CALLOUT_INSTANCE_ENV "REDIRECT_CALLOUT_INSTANCE"
#define CALLOUT_DEFAULT_INSTANCE "default"
#define CALLOUT_SOCKS_PIN_NAME "socks"
/* UDP flows handed to redirectors (callout_udp.bpf.h), read by the SDK's UDP query; 0600 too. */
#define CALLOUT_UDP_FLOWS_PIN_NAME "udp_flows"
#define CALLOUT_INSTANCE_MAX 64

#endif /* REDIRECT_CALLOUT_PATHS_H */
