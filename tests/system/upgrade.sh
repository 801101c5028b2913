# The trixie suite's kernel upgrade (issue 22), sourced by locked.sh in the
# locked boot 2, before the purge: the next kernel's packages (copied in by the
# host, /var/cache/modtrace-test/debs) installed offline with apt, which runs
# their postinst: linux-run-hooks, hence update-initramfs and modtrace's
# kernel hook with its `check --kernel` verdict in the journal. 7.3 has no
# AppleTalk, which fake-dm.service needs: the hook must refuse to lock that
# kernel. The admin's answer (check names fake-dm.service): retire fake-dm,
# deny appletalk, run the hook again, which now installs 7.3's list. Boot 3
# (upgraded.sh) then boots that kernel with the initramfs its package built.

KVER=$(cat /etc/modtrace-test/upgrade)
# The learned kernel's modules-load.d list, before the hook rewrites it for
# KVER: boot 3 hands its names KVER lacks to systemd-modules-load.
cp /etc/modules-load.d/modtrace.conf /var/lib/modtrace-test-modules-load.conf 2>"$OUT/upgrade-modules-load-saved.err"
journal_since=$(date '+%Y-%m-%d %H:%M:%S')
record upgrade-install env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends /var/cache/modtrace-test/debs/*.deb
journalctl -t modtrace --since "$journal_since" --no-pager -o cat >"$OUT/upgrade-journal-install" 2>&1
ls /etc/modtrace/lock >"$OUT/upgrade-lists-install" 2>&1

journal_since=$(date '+%Y-%m-%d %H:%M:%S')
record upgrade-disable-fake-dm systemctl disable fake-dm.service
record upgrade-deny "$MODTRACE" deny appletalk
record upgrade-hook /etc/kernel/postinst.d/modtrace "$KVER" "/boot/vmlinuz-$KVER"
journalctl -t modtrace --since "$journal_since" --no-pager -o cat >"$OUT/upgrade-journal-hook" 2>&1
ls /etc/modtrace/lock >"$OUT/upgrade-lists" 2>&1
cat "/etc/modtrace/lock/$KVER.conf" >"$OUT/upgrade-list-new" 2>&1
ls /boot >"$OUT/upgrade-boot-files" 2>&1
record upgrade-switch systemctl enable modtrace-test-upgraded.service
systemctl disable modtrace-test-locked.service >/dev/null 2>&1
