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
finish
