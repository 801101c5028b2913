//! Writes the decode target's seed records into DIR (they follow the wire
//! structs of this build, so they are made, not stored).

fn main() {
    let dir = std::env::args_os().nth(1).expect("usage: seeds DIR");
    std::fs::create_dir_all(&dir).expect("creating the seed directory");
    for (i, record) in modtrace_fuzz::decode_seeds().iter().enumerate() {
        std::fs::write(std::path::Path::new(&dir).join(format!("record-{i}")), record).expect("writing a seed");
    }
}
