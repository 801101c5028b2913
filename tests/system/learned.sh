#!/bin/sh
# Boot 1 of cargo xtask vm-test --system (run by modtrace-test-learned.service
# once the boot is over): modtrace-learn.service has learned since early boot;
# stop it (SIGTERM: it saves the profile), generate the lock-down into / with
# the host's --lock-point, enable modtrace-lock.service for boot 2 (or, when
# the host asks for the guard boot, modtrace-guard.service first) and power off.

. /usr/local/lib/modtrace-test/common.sh

begin boot1
deputy_mount
# The desktop suite: the session is up and has played its sound before the
# boot's modules are listed and learning stops.
desktop_session_wait
boot_facts
desktop_facts
services_facts
# Installed from its .deb when the image was made, as a user would.
dpkg-query -W -f='${Status} ${Version}\n' modtrace >"$OUT/package-status" 2>&1

# The learner saves /var/lib/modtrace/profile.json when stopped.
record learn-stop systemctl stop modtrace-learn.service
show_unit modtrace-learn.service unit-modtrace-learn.service.stopped
journalctl -b -u modtrace-learn.service --no-pager -o cat >"$OUT/learn.log" 2>&1
# learn's entry for each module and new cause (docs/journal.md).
journalctl --sync 2>/dev/null
journalctl -b -o json MESSAGE_ID=a0494ea2749d4e5189d4ce8ce09fa450 >"$OUT/learn-evidence.json" 2>&1
cp /var/lib/modtrace/profile.json "$OUT/profile.json" 2>>"$OUT/learn.log"
record report "$MODTRACE" report

# What a user does after learning (docs/lockdown.md), with --out / to install.
record generate "$MODTRACE" generate --out / --lock-point "$LOCK_POINT"
# Also into the default place, /var/lib/modtrace/generated, which purge removes.
record generate-default "$MODTRACE" generate
record check "$MODTRACE" check
mkdir -p "$OUT/generated"
cp /etc/modules-load.d/modtrace.conf /etc/systemd/system/modtrace-lock.service "$OUT/generated/" 2>>"$OUT/generate.err"
for dropin in /etc/systemd/system/*.d/modtrace-modules.conf; do
    [ -e "$dropin" ] || continue
    unit=$(basename "$(dirname "$dropin")" .d)
    cp "$dropin" "$OUT/generated/dropin-$unit.conf"
done

systemctl daemon-reload
if [ -e /etc/modtrace-test/guard-boot ]; then
    # The guard boot comes first (guarded.sh then enables boot 2's units):
    # modtrace-guard.service from early boot, in enforce mode, as a user sets it.
    echo MODTRACE_GUARD_MODE=enforce >>/etc/default/modtrace
    if [ -e /etc/modtrace-test/sealed-guard ]; then
        echo MODTRACE_GUARD_SEAL=yes >>/etc/default/modtrace
    fi
    record enable systemctl enable modtrace-guard.service modtrace-test-guarded.service
else
    # Boot 2: locked, no learning, the recording unit of the locked boot.
    record enable systemctl enable modtrace-lock.service modtrace-test-locked.service
fi
record disable systemctl disable modtrace-learn.service modtrace-test-learned.service

finish
