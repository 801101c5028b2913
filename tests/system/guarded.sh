#!/bin/sh
# The guard boot of cargo xtask vm-test --system, between boot 1 and boot 2
# (run by modtrace-test-guarded.service once the boot is over): boot 1 enabled
# modtrace-guard.service in enforce mode (MODTRACE_GUARD_MODE in
# /etc/default/modtrace), so the guard was in force from before
# systemd-modules-load and udev. Record how the boot went, then try loads of
# modules outside the profile, which the guard must refuse with EPERM:
#   explicit:  modprobe isofs                  (its finit_module of cdrom's file)
#   in memory: modtrace-guest init-module F.ko (init_module: no file to check)
#   automatic: modtrace-guest socket 35        (request_module("net-pf-35"))
#   udev:      (bookworm) the i6300esb watchdog announced again: udev's load of
#              its driver is refused; the decision must name module and device
# and read the guard's decisions back from the journal (journalctl -o json).
# Then a module file of the running kernel is replaced (a package upgrade:
# same name, new inode), which the guard refuses until the kernel postinst
# hook refreshes it; then generate refreshes it when the profile's set changed.
# Where the suite seals the guard at boot (MODTRACE_GUARD_SEAL=yes, bookworm),
# root tries to undo it instead (`sealed` below).
# Last, switch to boot 2's units (the lock) and power off.

. /usr/local/lib/modtrace-test/common.sh

INIT_MODULE_FILE=/usr/local/lib/modtrace-test/nls_utf8.ko
# A module of the profile that nothing holds once fake-dm's socket is closed.
REPLACED_MODULE=appletalk

# wait_journal MATCH COUNT: until the logger has written COUNT entries with
# the journal field MATCH (at most 20 s).
wait_journal() {
    waited=0
    while [ "$(journalctl -b -q -o cat "$1" 2>/dev/null | wc -l)" -lt "$2" ] &&
        [ "$waited" -lt 200 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
}

# refresh: a package upgrade replaces a module file of the running kernel: the
# guard still knows the old inode and refuses the new file until refreshed.
# Then generate keeps a guard from its profile in line: nothing changed, then
# (on a copy of the profile, which the guard is switched to) appletalk denied.
refresh() {
    file=$(modinfo -n "$REPLACED_MODULE")
    echo "$file" >"$OUT/replaced-file"
    record replace-rmmod rmmod "$REPLACED_MODULE"
    cp -p "$file" "$file.new" && mv "$file.new" "$file"
    record replace-stale /sbin/modprobe "$REPLACED_MODULE"
    record replace-hook /etc/kernel/postinst.d/modtrace "$(uname -r)"
    record replace-modprobe /sbin/modprobe "$REPLACED_MODULE"
    cat /proc/modules >"$OUT/proc-modules-replaced"
    record guard-status-after "$MODTRACE" guard status --json

    record generate-unchanged "$MODTRACE" generate --out /var/tmp/generated-unchanged
    COPY=/var/tmp/guard-profile.json
    cp /var/lib/modtrace/profile.json "$COPY"
    record guard-start-copy "$MODTRACE" guard start --profile "$COPY" --mode enforce
    record generate-other-profile "$MODTRACE" generate --out /var/tmp/generated-other
    record deny-copy "$MODTRACE" deny "$REPLACED_MODULE" --profile "$COPY"
    record generate-changed "$MODTRACE" generate --profile "$COPY" --out /var/tmp/generated-changed
    rmmod "$REPLACED_MODULE"
    record generate-refused /sbin/modprobe "$REPLACED_MODULE"
}

# sealed: modtrace-guard.service sealed the guard at boot (MODTRACE_GUARD_SEAL=yes).
# Root tries to undo it, from this unit: modtrace itself, rm of its pins, umount
# of bpffs; each is refused. The kernel hook and generate leave it alone and
# say the new policy applies from the next boot. The profile's modules still
# load on demand (appletalk, unloaded first), the rest is refused above.
sealed() {
    record sealed-stop "$MODTRACE" guard stop
    record sealed-start-complain "$MODTRACE" guard start --mode complain
    record sealed-rm rm -rf /sys/fs/bpf/modtrace/guard
    record sealed-umount umount /sys/fs/bpf
    record sealed-hook /etc/kernel/postinst.d/modtrace "$(uname -r)"
    record sealed-generate "$MODTRACE" generate --out /var/tmp/generated-sealed
    record sealed-rmmod rmmod "$REPLACED_MODULE"
    record sealed-modprobe /sbin/modprobe "$REPLACED_MODULE"
    cat /proc/modules >"$OUT/proc-modules-sealed"
    record guard-status-sealed "$MODTRACE" guard status --json
    wait_journal MODTRACE_HOOK=seal 4
    journalctl -b -q -o json MODTRACE_HOOK=seal >"$OUT/journal-sealed.json" 2>&1
}

begin guard
boot_facts
services_facts
for unit in modtrace-guard.service systemd-udevd.service systemd-journald.service; do
    show_unit "$unit"
done
record guard-status "$MODTRACE" guard status --json
# What the guard refused while the machine booted, before any attempt here.
journalctl -b -q -o json MODTRACE_DECISION=denied >"$OUT/journal-boot-denied.json" 2>&1

record deny-modprobe /sbin/modprobe isofs
record deny-init-module "$GUEST_TOOL" init-module "$INIT_MODULE_FILE"
record deny-request "$GUEST_TOOL" socket 35
cat /proc/modules >"$OUT/proc-modules-after"
before=$(wc -l <"$OUT/journal-boot-denied.json")
wait_journal MODTRACE_DECISION=denied $((before + 3))
seen=$(journalctl -b -q -o cat MODTRACE_FILE=i6300esb.ko 2>/dev/null | wc -l)
retrigger_watchdog
if [ -e "$OUT/watchdog-device" ]; then
    wait_journal MODTRACE_FILE=i6300esb.ko $((seen + 1))
fi
journalctl -b -q -o json -u modtrace-guard.service >"$OUT/guard-journal.json" 2>&1

if [ -e /etc/modtrace-test/sealed-guard ]; then
    sealed
else
    refresh
fi

# Boot 2: the lock, without the guard.
record enable systemctl enable modtrace-lock.service modtrace-test-locked.service
record disable systemctl disable modtrace-guard.service modtrace-test-guarded.service

finish
