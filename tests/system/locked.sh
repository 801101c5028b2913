#!/bin/sh
# Boot 2 of cargo xtask vm-test --system (run by modtrace-test-locked.service
# once the boot is over): record how the locked boot went, then, with
# `modtrace trace --json` running, try three loads of modules the profile does
# not have, each of which the lock must refuse with EPERM:
#   explicit:  modprobe isofs                  (finit_module by modprobe; the
#              trixie test mounts a FAT image, so vfat is in its profile)
#   in memory: modtrace-guest init-module F.ko (init_module by modtrace-guest)
#   automatic: modtrace-guest socket 35        (AF_PHONET: the kernel requests
#              net-pf-35, its modprobe helper's load of phonet is refused)
#   udev:      (bookworm) the i6300esb watchdog announced again: udev's load of
#              its driver is refused; the record must name module and device
# and last, `apt-get purge modtrace`: the profile must stay, generate's copy and
# the program must go, the installed lock service must stay (it locks without
# modtrace).

. /usr/local/lib/modtrace-test/common.sh

TRACE_SECONDS=6
# Uncompressed by the host (the kernel's own copy may be .ko.xz).
INIT_MODULE_FILE=/usr/local/lib/modtrace-test/nls_utf8.ko

begin boot2
desktop_session_wait
boot_facts
desktop_facts
services_facts

"$MODTRACE" trace --json --duration "${TRACE_SECONDS}s" >"$OUT/trace.jsonl" 2>"$OUT/trace.err" &
tracer=$!
waited=0
while ! grep -q '^modtrace: attached' "$OUT/trace.err" && kill -0 "$tracer" 2>/dev/null && [ "$waited" -lt 600 ]; do
    sleep 0.1
    waited=$((waited + 1))
done
retrigger_watchdog
record deny-modprobe /sbin/modprobe isofs
record deny-init-module "$GUEST_TOOL" init-module "$INIT_MODULE_FILE"
record deny-request "$GUEST_TOOL" socket 35
wait "$tracer"
echo $? >"$OUT/trace.status"
cat /proc/modules >"$OUT/proc-modules-after"

# The trixie suite's upgrade boot (upgrade.sh): the next kernel, installed locked.
if [ -e /etc/modtrace-test/upgrade ]; then
    . /usr/local/lib/modtrace-test/upgrade.sh
fi

record purge apt-get purge -y modtrace
for path in /var/lib/modtrace/profile.json /var/lib/modtrace/generated /usr/sbin/modtrace \
    /etc/systemd/system/modtrace-lock.service; do
    if [ -e "$path" ]; then echo "present $path"; else echo "absent $path"; fi
done >"$OUT/after-purge"
dpkg-query -W -f='${Status}\n' modtrace >"$OUT/package-status-after-purge" 2>&1

finish
