#!/bin/sh
# The guest side of cargo xtask demo. modtrace-learn.service has learned since
# early boot while fake-dm.service (binfmt_misc, an AppleTalk socket),
# vpn-demo.service (tun) and the fstab mount of a FAT image (loop, vfat) ran.
# Each command is shown with its output on the console, each line prefixed
# "DEMO| " so that the host can show them without the boot's messages; past
# SHOWN_LINES lines of one command the rest is prefixed "DEMO+ ", which the host
# keeps in its console log but does not show.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C SYSTEMD_PAGER= SYSTEMD_COLORS=0
exec >/dev/console 2>&1

say() {
    printf 'DEMO| %s\n' "$*"
}

SHOWN_LINES=30

# shown FILE: its first SHOWN_LINES lines for the host to show, the rest kept.
shown() {
    sed "1,${SHOWN_LINES}s/^/DEMO|   /; $((SHOWN_LINES + 1)),\$s/^/DEMO+   /" "$1"
    more=$(($(wc -l <"$1") - SHOWN_LINES))
    [ "$more" -gt 0 ] && say "  ... $more more lines (in the console log)"
}

# show COMMAND...: prints the command, then its output and exit status.
show() {
    say ""
    say "\$ $*"
    "$@" >/tmp/demo-out 2>&1
    status=$?
    shown /tmp/demo-out
    say "(exit $status)"
}

# The boot is over once its jobs are done and udev's coldplug has loaded every
# driver: stop learning only then, or the lock rightly refuses what came later.
timeout 300 systemctl is-system-running --wait >/dev/null 2>&1
timeout 300 udevadm settle
say "boot finished: $(systemd-analyze time 2>/dev/null | head -n 1)"
show systemctl stop modtrace-learn.service
show journalctl -b -u modtrace-learn.service --no-pager -o cat
show modtrace report
show modtrace report --by unit
show modtrace generate --out /
show modtrace check
show modtrace lock --dry-run
show modtrace lock
show cat /proc/sys/kernel/modules_disabled
say ""
say "# a module outside the profile, with modtrace trace watching:"
modtrace trace --duration 6s >/tmp/trace.txt 2>&1 &
sleep 3
show modprobe tcp_westwood
wait
shown /tmp/trace.txt
say ""
if [ "$(cat /proc/sys/kernel/modules_disabled)" = 1 ]; then
    say "done: learned at boot, generated, checked and locked; the refused load is traced with who tried it"
else
    say "done, but NOT locked: modtrace lock refused, for the reasons it gave above"
fi
printf '\nMODTRACE-SYSTEM-DONE demo\n'
systemctl poweroff
