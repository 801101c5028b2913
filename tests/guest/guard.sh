# modtrace guard in the guest, sourced by tests/guest/init after the main
# scenario (it uses init's step/capture helpers and the learned $PROFILE).
# complain lets a module outside the profile load and reports it; enforce
# lets the profile's modules load (explicitly and by autoload, after they
# were unloaded) and refuses the rest: an explicit load, an autoload, a copy
# of an allowed module's file under another name, init_module; then status,
# a refresh and a restart (the trace and the logger, started before the
# guard, follow it) that allows init_module and refuses an image crafted to
# carry an allowed name where the kernel does not read it; stop, and loading
# works again. Finally the cost of a decision, measured.

# Outside the profile: loaded only by the killed learner (another profile).
GUARD_OUTSIDE=tcp_scalable
# Autoloads tcp_scalable: the kernel requests tcp_scalable for root.
GUARD_CC=/proc/sys/net/ipv4/tcp_congestion_control
# After the guard was stopped and started anew: requests tcp_hybla, outside
# the profile too (xtask's RESTART_ALIAS).
GUARD_RESTART_CC=hybla
# Where guard start pins it (xtask's SEAL_PIN_DIR).
GUARD_PIN_DIR=$SEAL_PIN_DIR

# Debian's 6.12 and newer modules are .ko.xz, which bookworm's kmod loads with
# init_module from memory: the guard must then allow init_module, by name.
case "$(/sbin/modinfo -n "$EXPLICIT_MODULE")" in
*.xz) GUARD_FLAGS=--allow-init-module ;;
*) GUARD_FLAGS= ;;
esac

# uncompressed MODULE DEST: an uncompressed copy of MODULE's file.
uncompressed() {
    src=$(/sbin/modinfo -n "$1")
    case "$src" in
    *.xz) xzcat "$src" >"$2" ;;
    *) cp "$src" "$2" ;;
    esac
}

guard_loaded() {
    grep -q "^$1 " /proc/modules
}

# guard_capture_loaded NAME MODULE: records whether MODULE is loaded (0 yes).
guard_capture_loaded() {
    guard_loaded "$2"
    exit_code "$1" $?
}

guard_start_watchers() {
    modtrace trace --json >"$OUT/guard-trace.jsonl" 2>"$OUT/guard-trace.stderr" &
    GUARD_TRACE_PID=$!
    modtrace guard log >"$OUT/guard-log.jsonl" 2>"$OUT/guard-log.stderr" &
    GUARD_LOG_PID=$!
    wait_tracing "$GUARD_TRACE_PID" "$OUT/guard-trace.stderr"
}

guard_complain() {
    capture guard-status-before modtrace guard status
    # Started before the guard: they must find it by themselves.
    step guard_watchers guard_start_watchers
    capture guard-start-complain modtrace guard start --profile "$PROFILE" --mode complain $GUARD_FLAGS
    capture guard-status-complain modtrace guard status
    "$RMMOD" "$GUARD_OUTSIDE" 2>/dev/null
    capture guard-complain-modprobe-outside "$MODPROBE" "$GUARD_OUTSIDE"
    guard_capture_loaded guard-complain-outside-loaded "$GUARD_OUTSIDE"
    "$RMMOD" "$GUARD_OUTSIDE"
}

guard_enforce() {
    capture guard-start-enforce modtrace guard start --profile "$PROFILE" --mode enforce $GUARD_FLAGS
    # Profile modules, after they were unloaded: explicit, and by autoload.
    "$RMMOD" "$EXPLICIT_MODULE" 2>/dev/null
    capture guard-enforce-modprobe-profile "$MODPROBE" "$EXPLICIT_MODULE"
    guard_capture_loaded guard-enforce-profile-loaded "$EXPLICIT_MODULE"
    ip link del mtdummy0 2>/dev/null
    "$RMMOD" dummy
    capture guard-enforce-autoload-profile ip link add mtdummy2 type dummy
    guard_capture_loaded guard-enforce-autoload-profile-loaded dummy
    # Outside the profile: explicit, and by autoload.
    capture guard-enforce-modprobe-outside "$MODPROBE" "$GUARD_OUTSIDE"
    capture guard-enforce-autoload-outside sh -c "echo scalable >$GUARD_CC"
    guard_capture_loaded guard-enforce-outside-loaded "$GUARD_OUTSIDE"
    # An allowed module's own file, copied out of the module tree and renamed.
    uncompressed "$EXPLICIT_MODULE" /tmp/renamed.ko
    "$RMMOD" "$EXPLICIT_MODULE"
    capture guard-enforce-renamed-file /sbin/insmod /tmp/renamed.ko
    guard_capture_loaded guard-enforce-renamed-loaded "$EXPLICIT_MODULE"
    # init_module: no file to check; refused without --allow-init-module,
    # with it refused unless the image names a module of the profile.
    uncompressed "$GUARD_OUTSIDE" /tmp/outside.ko
    capture guard-enforce-init-module modtrace-guest init-module /tmp/outside.ko
    capture guard-status modtrace guard status
    capture guard-status-json modtrace guard status --json
}

# The cost of one decision: the same finit_module calls with and without
# the guard (and its logger) in this boot. An allowed file already loaded fails with EEXIST
# after the check; a refused one with EPERM before the kernel reads it.
guard_cost() {
    "$MODPROBE" "$EXPLICIT_MODULE"
    allowed=$(/sbin/modinfo -n "$EXPLICIT_MODULE")
    capture guard-cost-allowed modtrace-guest finit-loop "$allowed" 1000
    capture guard-cost-refused modtrace-guest finit-loop /tmp/renamed.ko 1000
}

guard_after_stop() {
    capture guard-stop modtrace guard stop
    capture guard-status-after modtrace guard status
    capture guard-after-autoload sh -c "echo scalable >$GUARD_CC"
    guard_capture_loaded guard-after-outside-loaded "$GUARD_OUTSIDE"
    capture guard-cost-allowed-unguarded modtrace-guest finit-loop "$allowed" 1000
    capture guard-cost-renamed-unguarded modtrace-guest finit-loop /tmp/renamed.ko 1000
    # The logger follows the guard until told to stop; SIGINT ends it cleanly.
    kill -INT "$GUARD_LOG_PID"
    wait "$GUARD_LOG_PID"
    exit_code guard-log $?
}

# A refresh keeps the guard's rings; a stop and a new start makes new ones,
# which the running trace and logger must find (they look every 2 s).
# The new start allows init_module on every kernel, for the decoy below.
guard_restart() {
    capture guard-refresh modtrace guard refresh
    capture guard-restart-stop modtrace guard stop
    capture guard-restart-start modtrace guard start --profile "$PROFILE" --mode enforce --allow-init-module
    capture guard-restart-autoload sh -c "echo $GUARD_RESTART_CC >$GUARD_CC"
    guard_decoy
    sleep 3
}

# A trace that cannot keep up: stopped (SIGSTOP) while processes ask for
# file system types nobody has, each a distinct request the guard refuses,
# more than its ring holds. Its summary must count what the ring lost.
guard_lose_decisions() {
    kill -STOP "$GUARD_TRACE_PID"
    capture guard-lose-spam modtrace-guest spam-distinct-requests 3 100 2 mtlost
    kill -CONT "$GUARD_TRACE_PID"
    sleep 3
}

# init_module of GUARD_OUTSIDE's image with a section 0 named
# .gnu.linkonce.this_module that points at the profile module's name: the
# kernel skips section 0 and would load GUARD_OUTSIDE, so the guard must
# name it so and refuse it (EPERM, before the kernel looks at the image).
guard_decoy() {
    modtrace-guest section0-decoy /tmp/outside.ko "$GUARD_OUTSIDE" "$EXPLICIT_MODULE" /tmp/decoy.ko
    capture guard-decoy-init-module modtrace-guest init-module /tmp/decoy.ko
    guard_capture_loaded guard-decoy-loaded "$GUARD_OUTSIDE"
    "$RMMOD" "$GUARD_OUTSIDE" 2>/dev/null
}

# The trace's own work would count in the cost; the logger's is part of it.
# The guard's loss counters once it stopped: what the trace must have said.
guard_stop_trace() {
    stop "$GUARD_TRACE_PID"
    exit_code guard-trace "$STOPPED_STATUS"
    capture guard-lost-counters bpftool -j map dump pinned "$GUARD_PIN_DIR/GUARD_LOST"
}

# Detached behind modtrace's back: bpftool cannot detach an LSM program's
# link (a tracing link has no detach), but removing its pin releases it.
guard_detach() {
    capture guard-detach-bpftool bpftool link detach pinned "$GUARD_PIN_DIR/link-guard_request"
    capture guard-status-after-bpftool modtrace guard status
    rm "$GUARD_PIN_DIR/link-guard_read_file"
    capture guard-status-detached modtrace guard status
    capture guard-status-detached-json modtrace guard status --json
    # Its finit_module hook is gone: the renamed copy it refused loads now
    # (the kernel releases the link a moment after its pin is gone).
    "$RMMOD" "$EXPLICIT_MODULE"
    tries=0
    until /sbin/insmod /tmp/renamed.ko 2>/dev/null || [ "$tries" -ge 5 ]; do
        sleep 1
        tries=$((tries + 1))
    done
    guard_capture_loaded guard-detached-renamed-loaded "$EXPLICIT_MODULE"
}

guard_scenario() {
    phase guard
    guard_complain
    guard_enforce
    guard_restart
    guard_lose_decisions
    guard_stop_trace
    guard_cost
    guard_detach
    guard_after_stop
}
