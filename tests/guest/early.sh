# Learning from early boot in the guest, sourced by tests/guest/init after the
# guard scenario (it uses init's step/capture helpers). `modtrace learn
# --early` pins the probes and exits, as the initramfs's init-top script runs
# it; while only those probes run, a module is loaded by modprobe and another
# by the kernel's request (ip link add ... type ifb); a pinned directory of
# another build stands for a stale initramfs. Then a learner takes the probes
# over: its profile must carry both loads, attributed from the kernel's facts,
# the stale pins must be released unread, and nothing may stay pinned.

early_scenario() {
    capture early-pin modtrace learn --early
    step early_modprobe "$MODPROBE" "$EARLY_MODULE"
    step early_request ip link add mtearly0 type "$EARLY_REQUEST_MODULE"
    mkdir -p "/sys/fs/bpf/modtrace/early/$EARLY_FOREIGN"
    capture early-learn modtrace learn --out "$EARLY_PROFILE" --duration 1s --quiet
    [ ! -e /sys/fs/bpf/modtrace/early ]
    exit_code early-released $?
    cp "$EARLY_PROFILE" "$OUT/early.json"
}
