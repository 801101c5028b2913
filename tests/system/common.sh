# Shared by learned.sh (boot 1) and locked.sh (boot 2) of cargo xtask vm-test
# --system. Each fact goes into its own file under /var/lib/modtrace-test/BOOT/,
# which the host reads from the image afterwards (debugfs rdump) and judges
# (xtask/src/system/checks.rs). The scripts only record; they decide nothing.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export SYSTEMD_PAGER= SYSTEMD_COLORS=0 LC_ALL=C

RESULTS=/var/lib/modtrace-test
MODTRACE=/usr/sbin/modtrace
GUEST_TOOL=/usr/local/bin/modtrace-guest
# Written by the host: the --lock-point to generate with.
LOCK_POINT=$(cat /etc/modtrace-test/lock-point 2>/dev/null || echo after-udev)

# begin BOOT: starts an empty result directory $OUT.
begin() {
    BOOT=$1
    OUT=$RESULTS/$BOOT
    rm -rf "$OUT"
    mkdir -p "$OUT"
    echo "$LOCK_POINT" >"$OUT/lock-point"
}

# record NAME COMMAND...: stdout to NAME.out, stderr to NAME.err, the exit
# status to NAME.status.
record() {
    name=$1
    shift
    "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
    echo $? >"$OUT/$name.status"
}

# show_unit UNIT [FILE]: the unit's state and timestamps (monotonic, microseconds
# since boot) as KEY=VALUE lines, into FILE (default unit-UNIT.show).
show_unit() {
    systemctl show "$1" --property=Id,LoadState,UnitFileState,ActiveState,SubState,Result,ExecMainStatus,ExecMainCode,ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic,ActiveEnterTimestampMonotonic,InactiveExitTimestampMonotonic \
        >"$OUT/${2:-unit-$1.show}" 2>&1
}

# boot_facts: how the boot went, which modules are loaded, the lock state.
boot_facts() {
    # The boot is over when the job queue is empty; this unit (Type=simple)
    # does not hold it up.
    timeout 300 systemctl is-system-running --wait >"$OUT/system-state" 2>&1
    # udev keeps loading drivers for queued coldplug events after the boot
    # counts as finished: wait for them, so the module lists of both boots are
    # complete (in boot 2 nothing loads after the lock anyway).
    timeout 300 udevadm settle >"$OUT/udev-settle" 2>&1
    systemctl list-units --failed --plain --no-legend --no-pager >"$OUT/failed-units" 2>&1
    cat /proc/modules >"$OUT/proc-modules"
    cat /proc/sys/kernel/modules_disabled >"$OUT/modules-disabled"
    uname -r >"$OUT/kernel"
    cat /proc/uptime >"$OUT/uptime"
    systemd-analyze time >"$OUT/analyze-time" 2>&1
    for unit in multi-user.target fake-dm.service modtrace-learn.service modtrace-lock.service \
        systemd-udev-trigger.service systemd-modules-load.service; do
        show_unit "$unit"
    done
}

# finish: the journal, a marker line on the console for the host, power off.
finish() {
    journalctl -b --no-pager -o short-monotonic >"$OUT/journal.txt" 2>&1
    sync
    printf '\nMODTRACE-SYSTEM-DONE %s lock_point=%s state=%s\n' "$BOOT" "$LOCK_POINT" \
        "$(cat "$OUT/system-state" 2>/dev/null)" >/dev/console
    systemctl poweroff
}

# services_facts: the real services of the trixie test (xtask/src/system/services.rs),
# when the host installed them: their units, and whether each really works.
services_facts() {
    [ -e /etc/modtrace-test/services ] || return 0
    for unit in nftables.service wg-quick@mtwg0.service systemd-binfmt.service \
        proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount mnt-fat.mount mnt-minix.mount \
        modtrace-test-tun.service; do
        show_unit "$unit"
    done
    record nft-ruleset nft list ruleset
    record wg-link ip -details link show mtwg0
    record binfmt-entry cat /proc/sys/fs/binfmt_misc/modtrace-test
    record fat-mount findmnt --noheadings --output FSTYPE,OPTIONS /mnt/fat
    record minix-mount findmnt --noheadings --output FSTYPE,OPTIONS /mnt/minix
    record tun-link ip link show mttun0
    # modtrace-learn-generator's orderings (boot 1: while learning is enabled).
    ls /run/systemd/generator/*.d/50-modtrace-learn.conf >"$OUT/generator-dropins" 2>&1
}

# deputy_mount (issue 21, root deputies; trixie, whose image has udisks2):
# root's own fstab mount of a minix image (mnt-minix.mount, at boot), and a
# user (uid 1000, allowed by a polkit rule standing in for an active session)
# who loop-mounts a squashfs image of theirs through udisks2: udisksd (root,
# udisks2.service) makes the kernel load squashfs for that user. Run while
# learning, before boot_facts lists the modules.
deputy_mount() {
    [ -e /etc/modtrace-test/services ] || return 0
    data=/var/lib/modtrace-test-data
    timeout 300 systemctl is-system-running --wait >/dev/null 2>&1
    record deputy-useradd useradd --create-home --uid 1000 --shell /bin/sh modtrace-user
    install -o modtrace-user -m 0644 $data/user.squashfs /home/modtrace-user/disk.img
    as_user="runuser -u modtrace-user --"
    record deputy-loop $as_user udisksctl loop-setup --no-user-interaction --read-only --file /home/modtrace-user/disk.img
    loop=$(sed -n 's|.* as \(/dev/loop[0-9]*\)\.$|\1|p' "$OUT/deputy-loop.out")
    udevadm settle
    record deputy-mount $as_user udisksctl mount --no-user-interaction --block-device "${loop:-/dev/null}"
    record deputy-findmnt findmnt --noheadings --output FSTYPE,SOURCE,TARGET --types squashfs
    journalctl -b -o json _SYSTEMD_UNIT=udisks2.service >"$OUT/deputy-udisks.json" 2>&1
}

# retrigger_watchdog: where the suite adds QEMU's i6300esb watchdog (bookworm's
# guard and locked boots), whose driver the profile lacks, announce the device
# again (ACTION=add) so that udev tries its driver once more, and record the
# device's sysfs directory and ids for the host's checks.
WATCHDOG_MODALIAS=pci:v00008086d000025AB
retrigger_watchdog() {
    for dev in /sys/bus/pci/devices/*; do
        case "$(cat "$dev/modalias" 2>/dev/null)" in
        "$WATCHDOG_MODALIAS"*) ;;
        *) continue ;;
        esac
        path=$(readlink -f "$dev")
        echo "${path#/sys}" >"$OUT/watchdog-device"
        cat "$dev/modalias" "$dev/vendor" "$dev/device" >"$OUT/watchdog-sysfs"
        if [ -e "$dev/driver" ]; then echo bound; else echo none; fi >"$OUT/watchdog-driver"
        record watchdog-trigger udevadm trigger --action=add --settle "$path"
    done
}

# The desktop suite (xtask/src/system/desktop.rs): lightdm logs the user in to
# Xfce, whose autostart runs desktop/session.sh as the user.
DESKTOP_USER=kick
SESSION_DIR=/tmp/modtrace-test-session
SOUND_FILE=/usr/local/lib/modtrace-test/sound.wav
PCM_STATUS=/proc/asound/card0/pcm0p/sub0/status
SESSION_WAIT=300

# desktop_session_wait: waits (at most SESSION_WAIT seconds) for the user's
# session to have recorded its facts, and copies them to $OUT/session.
desktop_session_wait() {
    [ -e /etc/modtrace-test/desktop ] || return 0
    waited=0
    while [ ! -d "$SESSION_DIR" ] && [ "$waited" -lt "$SESSION_WAIT" ]; do
        sleep 1
        waited=$((waited + 1))
    done
    echo "$waited" >"$OUT/session-waited"
    cat /proc/uptime >"$OUT/session-seen"
    [ -d "$SESSION_DIR" ] && cp -r "$SESSION_DIR" "$OUT/session"
    return 0
}

# desktop_facts: who runs (the greeter, X, the user's session), whether X
# answers, the sound card, the logs, and binfmt_misc's units.
desktop_facts() {
    [ -e /etc/modtrace-test/desktop ] || return 0
    ps -eo pid,uid,user,comm,args >"$OUT/processes" 2>&1
    record x-server runuser -u "$DESKTOP_USER" -- env DISPLAY=:0 XAUTHORITY=/home/$DESKTOP_USER/.Xauthority xset q
    cat /proc/asound/cards >"$OUT/asound-cards" 2>&1
    ls /dev/snd >"$OUT/dev-snd" 2>&1
    mkdir -p "$OUT/logs"
    cp /var/log/Xorg.0.log /var/log/lightdm/*.log /home/$DESKTOP_USER/.xsession-errors "$OUT/logs/" 2>/dev/null
    for unit in lightdm.service display-manager.service graphical.target proc-sys-fs-binfmt_misc.automount \
        proc-sys-fs-binfmt_misc.mount systemd-binfmt.service udisks2.service; do
        show_unit "$unit"
    done
    loginctl list-sessions --no-legend >"$OUT/sessions" 2>&1
    # What systemd-binfmt registers, and which package put it there.
    for entry in /etc/binfmt.d/*.conf /run/binfmt.d/*.conf /usr/local/lib/binfmt.d/*.conf /usr/lib/binfmt.d/*.conf; do
        [ -e "$entry" ] && echo "$entry $(dpkg -S "$entry" 2>/dev/null | cut -d: -f1)"
    done >"$OUT/binfmt-d"
    return 0
}
