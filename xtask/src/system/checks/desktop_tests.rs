//! Self-tests of the desktop checks: a good desktop pair passes, and each
//! check fails on the evidence it reads.

use serde_json::json;

use super::*;
use crate::system::checks::{check_all, Boot};
use crate::system::LockPoint;

const PS: &str = "  PID   UID USER     COMMAND         COMMAND\n\
                  1     0 root     systemd         /sbin/init\n\
                  401     0 root     lightdm         /usr/sbin/lightdm\n\
                  420     0 root     Xorg            /usr/lib/xorg/Xorg :0 -seat seat0\n\
                  600  1000 kick     xfce4-session   xfce4-session\n\
                  640  1000 kick     xfwm4           xfwm4\n";

/// What one boot of a working desktop recorded (the desktop's files only).
fn desktop_boot(r: &mut Recorded) {
    let files = [
        ("session/uid", "1000\n"),
        ("session/user", "kick\n"),
        ("session/env", "DISPLAY=:0.0\nXDG_SESSION_TYPE=x11\nXDG_CURRENT_DESKTOP=XFCE\nXDG_SESSION_ID=2\n"),
        ("session/cgroup", "0::/user.slice/user-1000.slice/session-2.scope\n"),
        ("session/xset.status", "0\n"),
        ("session/pw-play.status", "0\n"),
        ("session/wpctl.out", "Audio\n"),
        ("session/pcm-running", "state: RUNNING\nowner_pid   : 900\n"),
        ("session/finished", "120.50 200.00\n"),
        ("session-waited", "30\n"),
        ("processes", PS),
        ("x-server.status", "0\n"),
        ("x-server.out", "Keyboard Control:\n  auto repeat:  on\n"),
        ("asound-cards", " 0 [Intel          ]: HDA-Intel - HDA Intel\n"),
        ("dev-snd", "by-path\ncontrolC0\npcmC0D0c\npcmC0D0p\ntimer\n"),
        ("unit-modtrace-learn.service.stopped", "InactiveEnterTimestampMonotonic=130000000\n"),
        ("journal.txt", "[    1.0] modtrace-test systemd[1]: Reached target graphical.target.\n"),
        ("proc-modules", "snd_hda_intel 1 0 - Live 0x0\next4 1 1 - Live 0x0\n"),
        ("profile.json", r#"{"modules": [{"name": "ext4", "triggers": []}]}"#),
        ("report.out", "MODULE  COUNT  UNIT  UID  PROCESS  VIA\next4  1  -  0  mount  request fs-ext4\n"),
    ];
    for (name, text) in files {
        r.insert(name, text);
    }
}

fn facts(edit: impl FnOnce(&mut Recorded, &mut Recorded)) -> Facts {
    let (mut b1, mut b2) = (Recorded::default(), Recorded::default());
    desktop_boot(&mut b1);
    desktop_boot(&mut b2);
    edit(&mut b1, &mut b2);
    Facts {
        lock_point: LockPoint::AfterUdev,
        boot1: Boot { finished: Ok(()), recorded: Some(b1) },
        boot2: Boot { finished: Ok(()), recorded: Some(b2) },
        guard: None,
        sealed_guard: false,
        services: None,
        dracut: None,
        watchdog: false,
        desktop: true,
    }
}

fn failures(f: &Facts) -> Vec<&'static str> {
    crate::check::run(DESKTOP_CHECKS, f).into_iter().filter(|c| c.result.is_err()).map(|c| c.name).collect()
}

/// boot 1 with binfmt_misc loaded through the automount by systemd-binfmt.
fn binfmt_loaded(b1: &mut Recorded) {
    b1.insert("proc-modules", "binfmt_misc 1 1 - Live 0x0\next4 1 1 - Live 0x0\n");
    let t = json!({"kind": "request", "alias": "fs-binfmt_misc", "via": "proc-sys-fs-binfmt_misc.mount",
        "requester": {"comm": "systemd-binfmt", "uid": 0, "unit": "systemd-binfmt.service"}});
    b1.insert("profile.json", &json!({"modules": [{"name": "binfmt_misc", "triggers": [t]}]}).to_string());
    b1.insert(
        "report.out",
        "MODULE  COUNT  UNIT  UID  PROCESS  VIA\nbinfmt_misc  1  systemd-binfmt.service  0  systemd-binfmt  \
         request fs-binfmt_misc via proc-sys-fs-binfmt_misc.mount\n",
    );
    b1.insert("binfmt-d", "/usr/lib/binfmt.d/python3.13.conf python3.13-minimal\n");
    b1.insert(
        "journal.txt",
        "[ 9.1] h systemd[1]: proc-sys-fs-binfmt_misc.automount: Got automount request for \
         /proc/sys/fs/binfmt_misc, triggered by 329 (systemd-binfmt)\n",
    );
}

#[test]
fn a_working_desktop_passes_whether_or_not_binfmt_misc_loads() {
    assert_eq!(failures(&facts(|_, _| {})), Vec::<&str>::new());
    let f = facts(|b1, _| binfmt_loaded(b1));
    assert_eq!(failures(&f), Vec::<&str>::new());
    assert!(binfmt_answer(&f).unwrap().contains("request by systemd-binfmt (unit \"systemd-binfmt.service\""));
    assert!(binfmt_answer(&facts(|_, _| {})).unwrap().starts_with("nothing loaded binfmt_misc"));
    assert!(check_all(&f).iter().any(|c| c.name == "desktop_session_up_boot2"));
    assert!(!check_all(&f).iter().any(|c| c.name == "profile_has_fake_dm_requests"));
}

#[test]
fn each_desktop_check_can_fail() {
    let one = |edit: fn(&mut Recorded, &mut Recorded)| failures(&facts(edit));
    assert_eq!(one(|b1, _| b1.insert("session/uid", "0\n")), ["desktop_session_up_boot1"]);
    assert_eq!(one(|_, b2| b2.insert("session/env", "DISPLAY=:0\n")), ["desktop_session_up_boot2"]);
    let other_display = |b1: &mut Recorded, _: &mut Recorded| {
        let env = b1.text("session/env").unwrap().replace("DISPLAY=:0.0", "DISPLAY=:1");
        b1.insert("session/env", &env);
    };
    assert_eq!(failures(&facts(other_display)), ["desktop_session_up_boot1"]);
    assert_eq!(one(|b1, _| b1.insert("session/cgroup", "0::/system.slice/x.service\n")), ["desktop_session_up_boot1"]);
    assert_eq!(one(|b1, _| b1.insert("session/xset.status", "1\n")), ["desktop_session_up_boot1"]);
    assert_eq!(one(|b1, _| b1.insert("session/pw-play.status", "1\n")), ["desktop_sound_played_boot1"]);
    assert_eq!(one(|_, b2| b2.remove("session/pcm-running")), ["desktop_sound_played_boot2"]);
    assert_eq!(one(|b1, _| b1.insert("session/finished", "140.0 1\n")), ["desktop_learned_the_whole_session"]);
    let no_session = one(|b1, _| b1.remove("session/finished"));
    assert_eq!(no_session, ["desktop_learned_the_whole_session"]);
    assert_eq!(one(|_, b2| b2.insert("processes", &PS.replace("xfwm4 ", "other "))), ["desktop_processes_run_boot2"]);
    assert_eq!(one(|_, b2| b2.insert("processes", &PS.replace("  1000 kick", "     0 root"))), [
        "desktop_processes_run_boot2"
    ]);
    assert_eq!(one(|_, b2| b2.insert("x-server.status", "1\n")), ["desktop_x_server_up_boot2"]);
    assert_eq!(one(|_, b2| b2.insert("asound-cards", "--- no soundcards ---\n")), ["desktop_sound_device_boot2"]);
    assert_eq!(one(|_, b2| b2.insert("dev-snd", "timer\n")), ["desktop_sound_device_boot2"]);
}

#[test]
fn the_binfmt_misc_answer_must_agree_with_the_evidence() {
    let name = ["desktop_report_answers_binfmt_misc"];
    // Not loaded, but PID 1 was asked to mount it.
    let f = facts(|b1, _| {
        let journal = "systemd[1]: proc-sys-fs-binfmt_misc.automount: Got automount request for \
                       /proc/sys/fs/binfmt_misc, triggered by 700 (xfsettingsd)\n";
        b1.insert("journal.txt", journal)
    });
    assert_eq!(failures(&f), name);
    // Loaded, but the report has no line for it, or names another process.
    assert_eq!(failures(&facts(|b1, _| b1.insert("proc-modules", "binfmt_misc 1 1 - Live 0x0\n"))), name);
    let f = facts(|b1, _| {
        binfmt_loaded(b1);
        let report = b1.text("report.out").unwrap().replace("systemd-binfmt  request", "xfsettingsd  request");
        b1.insert("report.out", &report);
    });
    assert_eq!(failures(&f), name);
    // Found loaded, no cause.
    let f = facts(|b1, _| {
        binfmt_loaded(b1);
        let m = json!({"name": "binfmt_misc", "triggers": [{"kind": "preloaded", "reason": "before learning"}]});
        b1.insert("profile.json", &json!({"modules": [m]}).to_string());
    });
    assert_eq!(failures(&f), name);
    // Through the automount, but PID 1 logged another process.
    let f = facts(|b1, _| {
        binfmt_loaded(b1);
        let journal = b1.text("journal.txt").unwrap().replace("(systemd-binfmt)", "(xfsettingsd)");
        b1.insert("journal.txt", &journal);
    });
    assert_eq!(failures(&f), name);
    // By systemd-binfmt, with no binfmt.d entry to register.
    let f = facts(|b1, _| {
        binfmt_loaded(b1);
        b1.insert("binfmt-d", "");
    });
    assert_eq!(failures(&f), name);
}
