//! etc/systemd/system/UNIT.d/modtrace-modules.conf: for every unit whose
//! processes caused a module load, `Wants=` and `After=modprobe@NAME.service`
//! per top-level module it needs, systemd's own way for a unit to declare a
//! module: the module is loaded before the unit starts, whenever that is.

use std::path::PathBuf;

use super::header::{self, comment_lines, Context};
use super::modules_load::reasons;
use crate::needs::Plan;
use crate::validate::{check_module, check_unit};
use super::{GeneratedFile, DROP_IN_NAME, UNIT_DIR};

pub fn path_for(unit: &str) -> PathBuf {
    PathBuf::from(UNIT_DIR).join(format!("{unit}.d")).join(DROP_IN_NAME)
}

pub fn render(plan: &Plan, ctx: &Context) -> Vec<GeneratedFile> {
    let mut files = Vec::new();
    for (unit, needs) in &plan.units {
        // plan() validated every unit and module name; a failure here is a bug.
        assert!(check_unit(unit).is_ok(), "unvalidated unit name {unit:?}");
        let mut out = header::render(
            ctx,
            &format!(
                "{unit} loaded these modules while modtrace learned. With module loading locked\n\
                 (kernel.modules_disabled=1) a module can only be there if it was loaded before the\n\
                 lock: modprobe@NAME.service loads it, and Wants=/After= make {unit} wait for it."
            ),
            &format!("delete this file, then: systemctl daemon-reload (the {unit}.d directory may go too if empty)."),
        );
        out.push_str("\n[Unit]\n");
        for (module, cited) in needs {
            assert!(check_module(module).is_ok(), "unvalidated module name {module:?}");
            out.push_str(&comment_lines(&format!("{module}:")));
            out.push_str(&reasons(cited, "  "));
            out.push_str(&format!("Wants=modprobe@{module}.service\nAfter=modprobe@{module}.service\n"));
        }
        files.push(GeneratedFile { path: path_for(unit), contents: out });
    }
    files
}
