#!/bin/sh
# Run by xfce4-session as the user (XDG autostart, /etc/xdg/autostart) in the
# desktop suite of cargo xtask vm-test --system: records what the session is
# (who, which display, which desktop), that its X server answers, and plays a
# sound through PipeWire while watching the HDA card's playback stream run.
# The facts go to $SESSION_DIR, made whole at once (rename) for the boot's
# root script (common.sh, desktop_session_wait) to copy; it decides nothing.

. /usr/local/lib/modtrace-test/common.sh

OUT=$SESSION_DIR.partial
rm -rf "$OUT" "$SESSION_DIR"
mkdir -p "$OUT"
cat /proc/uptime >"$OUT/started"
id -u >"$OUT/uid"
id -un >"$OUT/user"
for var in DISPLAY XDG_SESSION_TYPE XDG_CURRENT_DESKTOP XDG_SESSION_DESKTOP XDG_SESSION_ID DBUS_SESSION_BUS_ADDRESS; do
    eval "echo $var=\${$var}"
done >"$OUT/env"
cat /proc/self/cgroup >"$OUT/cgroup"
record xset xset q

# The sound: pw-play (the user's PipeWire, WirePlumber routes it to the HDA
# sink); while it plays, the card's first playback substream says RUNNING.
record wpctl timeout 30 wpctl status
timeout 60 pw-play "$SOUND_FILE" >"$OUT/pw-play.out" 2>"$OUT/pw-play.err" &
player=$!
waited=0
while [ "$waited" -lt 200 ]; do
    if grep -q RUNNING "$PCM_STATUS" 2>/dev/null; then
        cat "$PCM_STATUS" >"$OUT/pcm-running"
        break
    fi
    sleep 0.1
    waited=$((waited + 1))
done
wait "$player"
echo $? >"$OUT/pw-play.status"
cat /proc/uptime >"$OUT/finished"
mv "$OUT" "$SESSION_DIR"
