//! `seeds TARGET DIR`: writes seeds made from this build's own types into DIR:
//! the decode target's records (they follow the wire structs as they are), and
//! the profile target's current-schema profile (the committed /1 profile,
//! migrated and saved).

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, dir] = &args[..] else { panic!("usage: seeds decode|profile DIR") };
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir).expect("creating the seed directory");
    let seeds: Vec<(String, Vec<u8>)> = match target.as_str() {
        "decode" => {
            modtrace_fuzz::decode_seeds().into_iter().enumerate().map(|(i, r)| (format!("record-{i}"), r)).collect()
        }
        "profile" => vec![("current.json".to_string(), modtrace_fuzz::profile_seed().into_bytes())],
        other => panic!("no seeds are made for {other}"),
    };
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).expect("writing a seed");
    }
}
