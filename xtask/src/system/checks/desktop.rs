//! The desktop suite's checks (system/desktop.rs): lightdm logged the user in
//! to Xfce in both boots, the session played its sound on the HDA card while
//! learning and had finished before learning stopped, the locked boot still
//! runs the greeter, X and the user's session with the sound device, and
//! `modtrace report` answers the seed's question: what loaded binfmt_misc on
//! this desktop and on whose behalf, or that nothing did.

use serde_json::Value;

use super::services::{modules, s, triggers};
use super::{Facts, Recorded, LEARN_UNIT};
use crate::check::CheckFn;
use crate::system::desktop::{USER, USER_UID};

pub const DESKTOP_CHECKS: &[(&str, CheckFn<Facts>)] = &[
    ("desktop_session_up_boot1", |f| session_up(f.b1()?)),
    ("desktop_sound_played_boot1", |f| sound_played(f.b1()?)),
    ("desktop_learned_the_whole_session", learned_the_session),
    ("desktop_session_up_boot2", |f| session_up(f.b2()?)),
    ("desktop_processes_run_boot2", |f| processes_run(f.b2()?)),
    ("desktop_x_server_up_boot2", |f| x_server_up(f.b2()?)),
    ("desktop_sound_device_boot2", |f| sound_device(f.b2()?)),
    ("desktop_sound_played_boot2", |f| sound_played(f.b2()?)),
    ("desktop_report_answers_binfmt_misc", |f| binfmt_answer(f).map(|_| ())),
];

/// systemd's line when something touches the automount point (PID 1's journal).
const AUTOMOUNT_LINE: &str = "Got automount request for /proc/sys/fs/binfmt_misc, triggered by ";
const BINFMT: &str = "binfmt_misc";

/// The session's own facts (session.sh), copied by the boot's script.
fn session(r: &Recorded, name: &str) -> Result<String, String> {
    r.text(&format!("session/{name}")).map(|t| t.trim().to_string()).map_err(|e| {
        let waited = r.text("session-waited").unwrap_or("?").trim().to_string();
        let errors = r.text("logs/.xsession-errors").unwrap_or("").lines().rev().take(5).collect::<Vec<_>>();
        format!("{e} (the script waited {waited} s for the session; .xsession-errors ends {errors:?})")
    })
}

/// The autostart ran as the user, in an X11 Xfce session of logind, and its
/// `xset q` reached the X server.
fn session_up(r: &Recorded) -> Result<(), String> {
    let (uid, user) = (session(r, "uid")?, session(r, "user")?);
    if uid != USER_UID.to_string() || user != USER {
        return Err(format!("the session runs as {user} ({uid}), not {USER} ({USER_UID})"));
    }
    let env = session(r, "env")?;
    // DISPLAY is :0 or :0.0 (lightdm's screen number).
    let display = |l: &str| l.strip_prefix("DISPLAY=").is_some_and(|d| d == ":0" || d == ":0.0");
    let present = |want: &str| env.lines().any(|l| l == want);
    if !env.lines().any(display) || !present("XDG_SESSION_TYPE=x11") || !present("XDG_CURRENT_DESKTOP=XFCE") {
        return Err(format!("the session is not on X display :0 in Xfce:\n{env}"));
    }
    let cgroup = session(r, "cgroup")?;
    if !cgroup.contains(&format!("/user.slice/user-{USER_UID}.slice/session-")) {
        return Err(format!("the session is not a logind session of uid {USER_UID}: {cgroup}"));
    }
    match session(r, "xset.status")?.as_str() {
        "0" => Ok(()),
        code => Err(format!("xset q in the session exited {code}: {}", session(r, "xset.err").unwrap_or_default())),
    }
}

/// pw-play succeeded and the HDA card's playback substream ran meanwhile.
fn sound_played(r: &Recorded) -> Result<(), String> {
    let status = session(r, "pw-play.status")?;
    if status != "0" {
        let said = session(r, "pw-play.err").unwrap_or_default();
        return Err(format!("pw-play exited {status}: {said}; wpctl status:\n{}", session(r, "wpctl.out")?));
    }
    match session(r, "pcm-running") {
        Ok(pcm) if pcm.contains("state: RUNNING") => Ok(()),
        _ => Err("the HDA card's playback substream never said RUNNING while pw-play played".into()),
    }
}

/// Seconds since boot in a copy of /proc/uptime.
fn uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// learned.sh stopped learning after the session had played its sound.
fn learned_the_session(f: &Facts) -> Result<(), String> {
    let r = f.b1()?;
    let finished = uptime(&session(r, "finished")?).ok_or("session/finished is not an uptime")?;
    let stopped = r.unit_in(&format!("unit-{LEARN_UNIT}.stopped"))?;
    let stop = stopped.micros("InactiveEnterTimestampMonotonic").or(stopped.micros("ExecMainExitTimestampMonotonic"));
    let stop = stop.ok_or("the learner's stop has no timestamp")? as f64 / 1e6;
    match finished < stop {
        true => Ok(()),
        false => Err(format!("learning stopped at {stop:.1} s, before the session finished at {finished:.1} s")),
    }
}

/// The greeter (lightdm), X and the user's Xfce session run.
fn processes_run(r: &Recorded) -> Result<(), String> {
    let ps = r.text("processes")?;
    let running = |comm: &str, uid: u64| {
        ps.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == uid.to_string() && f[3] == comm
        })
    };
    let want = [("lightdm", 0), ("Xorg", 0), ("xfce4-session", USER_UID), ("xfwm4", USER_UID)];
    let missing: Vec<String> =
        want.iter().filter(|(c, u)| !running(c, *u)).map(|(c, u)| format!("{c} (uid {u})")).collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(format!("not running: {missing:?}; ps:\n{ps}")),
    }
}

/// root's `xset q` as the user, on :0 with the user's Xauthority, got answers.
fn x_server_up(r: &Recorded) -> Result<(), String> {
    if r.status("x-server")? != 0 || !r.text("x-server.out")?.contains("Keyboard Control:") {
        let log = r.text("logs/Xorg.0.log").unwrap_or("").lines().rev().take(8).collect::<Vec<_>>();
        return Err(format!("xset q on :0 failed: {}; Xorg.0.log ends {log:?}", r.said("x-server")));
    }
    Ok(())
}

/// The HDA card is there with its PCM devices.
fn sound_device(r: &Recorded) -> Result<(), String> {
    let cards = r.text("asound-cards")?;
    if !cards.contains("HDA-Intel") {
        return Err(format!("/proc/asound/cards has no HDA card: {cards:?}"));
    }
    let dev = r.text("dev-snd")?;
    if !dev.lines().any(|l| l.starts_with("pcmC0D0p")) {
        return Err(format!("/dev/snd has no playback PCM: {dev:?}"));
    }
    Ok(())
}

/// What PID 1 said it was asked to mount at /proc/sys/fs/binfmt_misc, by whom.
fn automount_requests(r: &Recorded) -> Result<Vec<String>, String> {
    let journal = r.text("journal.txt")?;
    Ok(journal.lines().filter_map(|l| l.split_once(AUTOMOUNT_LINE)).map(|(_, by)| by.trim().to_string()).collect())
}

/// The answer to the seed's question, from boot 1's evidence, when `modtrace
/// report` tells it: either the report's binfmt_misc line names the cause the
/// profile holds (the requester's process and unit, the automount PID 1 logged)
/// or nothing loaded binfmt_misc and neither the report nor the journal says so.
pub fn binfmt_answer(f: &Facts) -> Result<String, String> {
    let r = f.b1()?;
    let report = r.text("report.out")?;
    let line = report.lines().find(|l| l.split_whitespace().next() == Some(BINFMT));
    let asked = automount_requests(r)?;
    let loaded = r.modules("proc-modules")?.contains(BINFMT);
    let profile = r.profile()?;
    let module = modules(&profile)?.iter().find(|m| s(m, "/name") == BINFMT).cloned();
    match (loaded, module, line) {
        (false, None, None) if asked.is_empty() => Ok(format!(
            "nothing loaded {BINFMT} in boot 1: not loaded, not in the profile nor in the report, and PID 1 \
             logged no automount request for /proc/sys/fs/binfmt_misc"
        )),
        (false, None, None) => Err(format!("{BINFMT} is not loaded, yet PID 1 logged automount requests: {asked:?}")),
        (true, Some(m), Some(line)) => loaded_answer(&m, line, &asked, r.text("binfmt-d")?),
        (loaded, m, line) => Err(format!(
            "loaded: {loaded}; the profile's {BINFMT}: {}; the report's line: {line:?}",
            m.map_or("none".into(), |m| Value::from(triggers(&m)).to_string())
        )),
    }
}

/// The cells of a line of the report's table (MODULE COUNT UNIT UID PROCESS
/// VIA): the table puts two spaces or more between them, one at most inside.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect()
}

/// binfmt_misc was loaded: each trigger has a cause, the report's line names it,
/// and an automount request PID 1 logged names the same process; when that is
/// systemd-binfmt, the binfmt.d entries it registers (`binfmt-d`: file and
/// package) are part of the answer.
fn loaded_answer(m: &Value, line: &str, asked: &[String], entries: &str) -> Result<String, String> {
    let ts = triggers(m);
    let mut causes = Vec::new();
    for t in ts {
        let (comm, unit) = (s(t, "/requester/comm"), s(t, "/requester/unit"));
        let (comm, unit) = match s(t, "/kind") {
            "request" => (comm, unit),
            _ => (s(t, "/loader/comm"), s(t, "/loader/unit")),
        };
        if s(t, "/kind") == "preloaded" || comm.is_empty() {
            return Err(format!("{BINFMT} has a trigger without a process: {t}"));
        }
        let cells = cells(line);
        let (unit_cell, process) = (cells.get(2).copied().unwrap_or(""), cells.get(4).copied().unwrap_or(""));
        if !process.starts_with(comm) || unit_cell != if unit.is_empty() { "-" } else { unit } {
            return Err(format!("the report's line does not name {comm} in {unit:?}: {line:?}"));
        }
        if s(t, "/via") == "proc-sys-fs-binfmt_misc.mount" && !asked.iter().any(|a| a.contains(&format!("({comm})"))) {
            return Err(format!("{comm} came through the automount, but PID 1 logged no request by it: {asked:?}"));
        }
        let uid = t.pointer("/requester/uid").or(t.pointer("/loader/uid")).map_or("?".into(), Value::to_string);
        causes.push(format!("{} by {comm} (unit {unit:?}, uid {uid})", s(t, "/kind")));
    }
    if causes.is_empty() {
        return Err(format!("{BINFMT} is in the profile with no trigger"));
    }
    let entries: Vec<&str> = entries.lines().filter(|l| !l.trim().is_empty()).collect();
    let by_binfmt = ts.iter().any(|t| s(t, "/requester/unit") == "systemd-binfmt.service");
    if by_binfmt && entries.is_empty() {
        return Err("systemd-binfmt.service asked for it, yet no binfmt.d entry was recorded".into());
    }
    let entries = if by_binfmt { format!("; binfmt.d entries (file package): {entries:?}") } else { String::new() };
    Ok(format!("{BINFMT} loaded for {}; PID 1's automount requests: {asked:?}{entries}", causes.join("; ")))
}

#[cfg(test)]
#[path = "desktop_tests.rs"]
mod tests;
