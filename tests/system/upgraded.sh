#!/bin/sh
# Boot 3 of the trixie suite (issue 22): the kernel boot 2 installed, with the
# initramfs its package built, and the lock list its kernel hook made. Records
# how the boot went and the real services (modtrace itself was purged at the
# end of boot 2: the lock needs only modprobe).

. /usr/local/lib/modtrace-test/common.sh

begin boot3
boot_facts
services_facts
ls /etc/modtrace/lock >"$OUT/lock-lists" 2>&1
# modules-load.d is one list for every kernel: the names of the learned kernel's
# list this kernel lacks (cirrus, renamed cirrus_qemu) must not fail
# systemd-modules-load (it skips a module it cannot find). Only missing names are
# given, so the lock (EPERM for any insertion) does not mix in.
gone=/run/modtrace-test-modules-load-gone.conf
for m in $(grep -v '^#' /var/lib/modtrace-test-modules-load.conf); do
    modprobe -n -q "$m" 2>/dev/null || echo "$m"
done >"$gone"
cp "$gone" "$OUT/modules-load-gone"
record modules-load-gone env SYSTEMD_LOG_TARGET=console /usr/lib/systemd/systemd-modules-load "$gone"
finish
