//! Which device a udev load was for: recent kernel uevents with a MODALIAS.

use std::collections::VecDeque;

use crate::trace::event::Device;
use crate::trace::modindex::ModuleIndex;
use crate::trace::uevent::Uevent;

/// Device uevents are kept this long for udev loads to find.
pub const DEVICE_TTL_NS: u64 = 60 * 1_000_000_000;
/// At most this many device uevents are kept (a coldplug replays thousands).
pub const MAX_DEVICES: usize = 4096;

/// Recent uevents that carry a MODALIAS, oldest first, with their arrival time.
#[derive(Debug, Default)]
pub struct Devices {
    recent: VecDeque<(u64, Device)>,
}

impl Devices {
    /// Remembers a device uevent (with a MODALIAS) that arrived at `ts_ns`.
    pub fn add(&mut self, ts_ns: u64, ev: Uevent) {
        let Some(modalias) = ev.modalias else { return };
        if ev.action != "add" && ev.action != "bind" && ev.action != "change" {
            return;
        }
        self.expire(ts_ns);
        if self.recent.len() >= MAX_DEVICES {
            self.recent.pop_front();
        }
        self.recent.push_back((ts_ns, Device::new(modalias, ev.devpath, ev.subsystem)));
    }

    /// The device a udev load of `module` was for: recent devices whose MODALIAS
    /// needs `module` (itself or as a dependency). Only one distinct MODALIAS may
    /// match; several mean the device is not known for sure, so none is named.
    pub fn device_for(&self, index: &dyn ModuleIndex, module: Option<&str>) -> Option<Device> {
        let module = module?;
        let mut found: Option<&Device> = None;
        for (_, dev) in self.recent.iter().rev() {
            let needs = index.resolve(&dev.modalias).iter().any(|t| index.closure(t).iter().any(|m| m == module));
            if !needs {
                continue;
            }
            match found {
                None => found = Some(dev),
                Some(f) if f.modalias == dev.modalias => {}
                Some(_) => return None,
            }
        }
        found.cloned()
    }

    /// The device a udev call that failed before linking was for: recent
    /// devices whose MODALIAS needs a module not in the kernel (`missing`).
    /// Only one device may: with several, which one the worker was loading
    /// for is not known, and none is named.
    pub fn awaiting_driver(&self, index: &dyn ModuleIndex, missing: &dyn Fn(&str) -> bool) -> Option<Device> {
        let mut found: Option<&Device> = None;
        for (_, dev) in self.recent.iter().rev() {
            let waits = index.resolve(&dev.modalias).iter().any(|t| index.closure(t).iter().any(|m| missing(m)));
            if !waits {
                continue;
            }
            match found {
                None => found = Some(dev),
                Some(f) if f.devpath == dev.devpath && f.modalias == dev.modalias => {}
                Some(_) => return None,
            }
        }
        found.cloned()
    }

    pub fn expire(&mut self, now_ns: u64) {
        while self.recent.front().is_some_and(|(t, _)| t.saturating_add(DEVICE_TTL_NS) < now_ns) {
            self.recent.pop_front();
        }
    }
}
