#!/bin/sh
# modtrace's dracut cmdline hook (00, the earliest), for an initramfs without
# systemd: starts modtrace's probes before the initramfs loads any module and
# leaves them pinned under /sys/fs/bpf/modtrace/early; the initramfs moves /sys
# into the new root, so they go on tracing until the main system's
# modtrace-learn.service takes them over. dracut sources this file: no exit.
# Nothing here may stop the boot.
if [ -x /usr/sbin/modtrace ]; then
    mkdir -p /sys/fs/bpf /sys/kernel/tracing
    # mode=700: root's alone; the main system keeps this mount with /sys.
    grep -qs " /sys/fs/bpf bpf " /proc/mounts || mount -t bpf -o mode=700 bpf /sys/fs/bpf
    grep -qs " /sys/kernel/tracing tracefs " /proc/mounts || mount -t tracefs tracefs /sys/kernel/tracing
    /usr/sbin/modtrace learn --early ||
        echo "modtrace: the probes did not start in the initramfs; learning begins with modtrace-learn.service"
fi
