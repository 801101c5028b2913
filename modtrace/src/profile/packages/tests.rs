//! Package lookup against a stand-in dpkg database and unit search path.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::*;
use crate::testutil::{in_cgroup, loaded_for_request};

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A bookworm-like root: packages list /bin and /lib, the files live under /usr.
fn fake_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let info = "var/lib/dpkg/info";
    write(root, &format!("{info}/nftables.list"), "/.\n/lib/systemd/system/nftables.service\n/usr/sbin/nft\n");
    write(
        root,
        &format!("{info}/systemd.list"),
        "/lib/systemd/system/systemd-binfmt.service\n/lib/systemd/system/modprobe@.service\n/bin/systemctl\n",
    );
    write(root, &format!("{info}/kmod:amd64.list"), "/bin/kmod\n/sbin/modprobe\n");
    write(root, &format!("{info}/wireguard-tools.list"), "/lib/systemd/system/wg-quick@.service\n");
    write(root, &format!("{info}/python3-minimal.list"), "/usr/bin/python3\n");
    write(root, &format!("{info}/fakepy.list"), "/usr/bin/python3\n");
    write(root, &format!("{info}/localthing.list"), "/usr/sbin/tool\n");
    write(root, &format!("{info}/nftables.md5sums"), "0000 usr/sbin/other\n");
    write(
        root,
        "var/lib/dpkg/diversions",
        "/usr/bin/python3\n/usr/bin/python3.distrib\nfakepy\n/usr/sbin/tool\n/usr/sbin/tool.orig\n:\n",
    );
    for unit in ["nftables.service", "systemd-binfmt.service", "modprobe@.service", "wg-quick@.service"] {
        write(root, &format!("lib/systemd/system/{unit}"), "[Unit]\n");
    }
    write(root, "etc/systemd/system/admin.service", "[Unit]\n");
    fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    std::os::unix::fs::symlink("/dev/null", root.join("etc/systemd/system/masked.service")).unwrap();
    std::os::unix::fs::symlink("/lib/systemd/system/nftables.service", root.join("etc/systemd/system/nft.service"))
        .unwrap();
    dir
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

#[test]
fn merged_usr_paths_find_the_package_that_listed_them_without_usr() {
    let root = fake_root();
    let mut dpkg = Dpkg::under(root.path());
    assert!(dpkg.present());
    let found = dpkg.packages_of(&set(&["/usr/bin/kmod", "/usr/sbin/modprobe", "/usr/sbin/nft", "/usr/bin/absent"]));
    let got = |p: &str| found.get(p).map(String::as_str);
    assert_eq!((got("/usr/bin/kmod"), got("/usr/sbin/modprobe")), (Some("kmod"), Some("kmod")), "{found:?}");
    assert_eq!(got("/usr/sbin/nft"), Some("nftables"));
    assert_eq!(got("/usr/bin/absent"), None, "a file no package lists has none");
    assert_eq!(dpkg.packages_of(&set(&["/bin/systemctl"])).get("/bin/systemctl").map(String::as_str), Some("systemd"));
}

#[test]
fn a_diverted_file_belongs_to_its_diverter_and_the_moved_copy_to_its_package() {
    let root = fake_root();
    let mut dpkg = Dpkg::under(root.path());
    let found = dpkg.packages_of(&set(&["/usr/bin/python3", "/usr/bin/python3.distrib", "/usr/sbin/tool"]));
    assert_eq!(found.get("/usr/bin/python3").map(String::as_str), Some("fakepy"));
    assert_eq!(found.get("/usr/bin/python3.distrib").map(String::as_str), Some("python3-minimal"));
    assert_eq!(found.get("/usr/sbin/tool"), None, "a local diversion: the admin's file");
}

#[test]
fn unit_files_are_found_on_the_search_path_templates_and_links_included() {
    let root = fake_root();
    let dpkg = Dpkg::under(root.path());
    assert_eq!(dpkg.unit_file("nftables.service").as_deref(), Some("/lib/systemd/system/nftables.service"));
    assert_eq!(dpkg.unit_file("wg-quick@wg0.service").as_deref(), Some("/lib/systemd/system/wg-quick@.service"));
    assert_eq!(dpkg.unit_file("nft.service").as_deref(), Some("/lib/systemd/system/nftables.service"));
    assert_eq!(dpkg.unit_file("admin.service").as_deref(), Some("/etc/systemd/system/admin.service"));
    assert_eq!(dpkg.unit_file("masked.service"), None);
    assert_eq!(dpkg.unit_file("init.scope"), None);
}

#[test]
fn learning_records_the_packages_of_units_and_executables() {
    let root = fake_root();
    let mut p = Profile::new("6.12.0", "h");
    let nft = in_cgroup(7, "nft", Some("/usr/sbin/nft"), 0, "/system.slice/nftables.service");
    p.observe(&loaded_for_request("2024-03-01T10:00:00Z", "nf_tables", "nf_tables", "nf_tables", nft, &[]));
    let wg = in_cgroup(8, "ip", Some("/usr/bin/ip"), 0, "/system.slice/system-wg\\x2dquick.slice/wg-quick@wg0.service");
    p.observe(&loaded_for_request("2024-03-01T10:00:01Z", "wireguard", "rtnl-link-wireguard", "wireguard", wg, &[]));
    let admin = in_cgroup(9, "sh", Some("/usr/bin/dash"), 0, "/system.slice/admin.service");
    p.observe(&loaded_for_request("2024-03-01T10:00:02Z", "vfat", "fs-vfat", "vfat", admin, &[]));
    p.record_packages(&mut Dpkg::under(root.path()));
    let units: Vec<(&str, &str)> = p.packages.units.iter().map(|(u, k)| (u.as_str(), k.as_str())).collect();
    assert_eq!(units, [("nftables.service", "nftables"), ("wg-quick@wg0.service", "wireguard-tools")]);
    assert_eq!(p.packages.executables.get("/usr/sbin/nft").map(String::as_str), Some("nftables"));
    assert_eq!(p.packages.executables.get("/usr/bin/kmod").map(String::as_str), Some("kmod"), "the loader's");
    assert!(!p.packages.executables.contains_key("/usr/bin/dash"), "not in the stand-in database");
    let text = p.to_json();
    assert!(text.contains("\"packages\"") && text.contains("\"wg-quick@wg0.service\": \"wireguard-tools\""), "{text}");
}

#[test]
fn the_cache_is_bounded() {
    let root = fake_root();
    let mut dpkg = Dpkg::under(root.path());
    let many: BTreeSet<String> = (0..CACHE_MAX + 10).map(|i| format!("/usr/bin/x{i}")).collect();
    dpkg.packages_of(&many);
    dpkg.packages_of(&set(&["/usr/sbin/nft"]));
    assert!(dpkg.cache.len() <= CACHE_MAX, "{}", dpkg.cache.len());
}
