#!/bin/bash
# modtrace's dracut module (usr/lib/dracut/modules.d/99modtrace). Two jobs:
# - while modtrace-learn.service is enabled, modtrace goes into the initramfs
#   and starts its probes there before the initramfs loads its first module:
#   with systemd in the initramfs, modtrace-early.service (ordered before
#   systemd-udevd, systemd-modules-load and dracut's own hooks); without it,
#   dracut's earliest hook (cmdline, 00). The probes stay pinned under
#   /sys/fs/bpf/modtrace/early, /sys crosses switch_root with them, and the
#   main system's modtrace-learn.service takes over what they saw.
# - always: modtrace generate's deny list (/etc/modprobe.d/modtrace-deny.conf)
#   and module list (/etc/modules-load.d/modtrace.conf) stay out of the
#   initramfs, which dracut fills with /etc/modprobe.d and /etc/modules-load.d
#   in host-only mode. They are the main system's policy: a deny list made for
#   an older profile or kernel could refuse a driver the root file system
#   needs, and the list would make the initramfs load every module the lock
#   keeps, hiding their real causes from the next learning boot.
# Enable learning, then run `dracut --force` (or update-initramfs -u) so the next
# boot is learned from its start; after disabling it, rebuild to take modtrace out.
# 99: installed after 00systemd and 90kernel-modules, which copy those directories.

# Learning is enabled: a link in some .wants/ or .requires/ of /etc (systemctl enable).
modtrace_learning() {
    local etc="${dracutsysrootdir-}/etc/systemd/system" link
    for link in "$etc"/*.wants/modtrace-learn.service "$etc"/*.requires/modtrace-learn.service; do
        if [[ -L $link || -e $link ]]; then
            return 0
        fi
    done
    return 1
}

# called by dracut: always part of the image (the deny list must be kept out).
check() {
    return 0
}

# called by dracut
depends() {
    return 0
}

# called by dracut
install() {
    rm -f -- "${initdir:?}/etc/modprobe.d/modtrace-deny.conf" "${initdir:?}/etc/modules-load.d/modtrace.conf"
    modtrace_learning || return 0
    inst_binary /usr/sbin/modtrace
    if dracut_module_included "systemd"; then
        inst_simple "$moddir/modtrace-early.service" "$systemdsystemunitdir/modtrace-early.service"
        $SYSTEMCTL -q --root "$initdir" add-wants sysinit.target modtrace-early.service
    else
        inst_hook cmdline 00 "$moddir/modtrace-early.sh"
    fi
}
