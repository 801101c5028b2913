//! The desktop suite's desktop (issue 24): lightdm logs the unprivileged user
//! `kick` in to a minimal Xfce session on the emulated display adapter, and
//! the session's XDG autostart (tests/system/desktop/session.sh) records what
//! it is and plays a sound through PipeWire to an HDA card. QEMU gets the
//! devices a desktop has: the display adapter (`-vga std`, as every suite), an
//! HDA codec with no host audio behind it, and a USB controller with a keyboard
//! and a tablet. The fake display manager of the other suites is left out, so
//! whatever loads binfmt_misc here is the desktop's own (checks/desktop.rs).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::harness::cmd;

/// The desktop's QEMU devices. The USB controller's id is `xhci`: devices
/// plugged in later through the monitor go on its bus `xhci.0`.
pub const DEVICES: [&str; 12] = [
    "-audiodev",
    "none,id=snd0",
    "-device",
    "ich9-intel-hda",
    "-device",
    "hda-duplex,audiodev=snd0",
    "-device",
    "qemu-xhci,id=xhci",
    "-device",
    "usb-kbd,bus=xhci.0",
    "-device",
    "usb-tablet,bus=xhci.0",
];

/// Added to each boot's limit: the session comes up after the boot, and the
/// boot's script waits for it (common.sh, SESSION_WAIT).
pub const SESSION_TIME: Duration = Duration::from_secs(300);

/// The unprivileged user lightdm logs in (uid 1000), as common.sh names it.
pub const USER: &str = "kick";
pub const USER_UID: u64 = 1000;

/// tests/system files of the desktop: (file, destination in the guest, mode).
pub const FILES: [(&str, &str, u32); 3] = [
    (
        "tests/system/desktop/50-modtrace-test-autologin.conf",
        "etc/lightdm/lightdm.conf.d/50-modtrace-test-autologin.conf",
        0o644,
    ),
    ("tests/system/desktop/modtrace-test-session.desktop", "etc/xdg/autostart/modtrace-test-session.desktop", 0o644),
    ("tests/system/desktop/session.sh", "usr/local/lib/modtrace-test/session.sh", 0o755),
];

/// Files written into the desktop's image: the sound the session plays, and
/// the mark that tells common.sh to wait for the session.
pub fn written() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("usr/local/lib/modtrace-test/sound.wav", wav(48_000, 1.5, 440.0)),
        ("etc/modtrace-test/desktop", b"lightdm, Xorg and Xfce, autologin (xtask/src/system/desktop.rs)\n".to_vec()),
    ]
}

/// Creates the user in the staged root with the guest's own useradd.
pub fn stage(root: &Path) -> Result<()> {
    let uid = USER_UID.to_string();
    let useradd = ["useradd", "--create-home", "--shell", "/bin/sh", "--uid", &uid, USER];
    cmd::run(Command::new("chroot").arg(root).args(useradd))
}

/// A mono 16-bit PCM WAV file: a sine of `hz` for `seconds`, at half scale.
fn wav(rate: u32, seconds: f64, hz: f64) -> Vec<u8> {
    let frames = (f64::from(rate) * seconds) as u32;
    let data_len = frames * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    // fmt chunk: size 16, PCM (1), 1 channel, the rate, bytes per second,
    // block align 2, 16 bits per sample.
    for (value, width) in [(16, 4), (1, 2), (1, 2), (rate, 4), (rate * 2, 4), (2, 2), (16, 2)] {
        out.extend_from_slice(&u32::to_le_bytes(value)[..width]);
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        let t = f64::from(i) / f64::from(rate);
        let sample = (f64::from(i16::MAX / 2) * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

#[test]
fn the_sound_is_a_wav_of_the_length_asked() {
    let bytes = wav(8_000, 0.5, 440.0);
    assert_eq!(bytes.len(), 44 + 8_000);
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 36 + 8_000);
    assert_eq!(&bytes[8..16], b"WAVEfmt ");
    assert_eq!(u32::from_le_bytes(bytes[24..28].try_into().unwrap()), 8_000, "the rate");
    assert_eq!(&bytes[36..40], b"data");
    assert!(bytes[44..].iter().any(|&b| b != 0), "not silence");
}
