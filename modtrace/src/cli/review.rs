//! `modtrace review`: one module at a time of those only untrusted processes
//! asked for: accept, deny or skip; the decisions go into the profile.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::needs::target::Target;
use crate::profile::{self, decide, system};
use crate::outputs::review;
use crate::needs::sitepolicy::SitePolicy;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The profile to review and record the decisions in.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let site = SitePolicy::read(Path::new("/"));
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        eprintln!(
            "modtrace: review reads its answers from standard input (a for accept, d for deny, s for skip, q for quit)"
        );
    }
    let summary = decide::update(&args.profile, |p| {
        let plan = crate::needs::derive(p, &site, &Target::from_profile(p))
            .map_err(|bad| decide::DecideError::Unusable(bad.iter().map(|i| i.to_string()).collect()))?;
        let items = review::items(&plan);
        if items.is_empty() {
            println!(
                "nothing needs review: every listed module was asked for by root on the host, or was decided already"
            );
        }
        review::run(p, &items, &review::modinfo_description, &mut stdin.lock(), &mut io::stdout(), &system::now())
    })?;
    println!(
        "\n{} accepted, {} denied, {} skipped (recorded in {}); run modtrace generate to apply",
        summary.accepted.len(),
        summary.denied.len(),
        summary.skipped.len(),
        args.profile.display()
    );
    Ok(ExitCode::SUCCESS)
}
