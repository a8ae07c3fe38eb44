//! `mxsim shrink SCENARIO.toml --seed N --out MIN.toml` (docs/sweeps.md): reduce a failing
//! scenario and seed to a minimal scenario that still fails.

use std::path::PathBuf;

use clap::Args;

use crate::cli::run::VERSION;
use crate::cli::{CliError, Outcome, read_text, write};
use crate::sweep::{Job, shrink};

#[derive(Args, Debug)]
pub struct ShrinkArgs {
    /// The scenario file that fails.
    pub scenario: PathBuf,
    /// The failing seed.
    #[arg(long)]
    pub seed: u64,
    /// The failure was found with `--swarm`: start from the seed's swarm configuration.
    #[arg(long)]
    pub swarm: bool,
    /// Where to write the minimal scenario.
    #[arg(long)]
    pub out: PathBuf,
    /// The invariant that must keep failing (default: the run's first violation).
    #[arg(long)]
    pub invariant: Option<crate::stdx::Invariant>,
    /// Also try this many following seeds when a smaller scenario passes with the seed.
    #[arg(long, default_value_t = 0)]
    pub reseed: u64,
    /// Most simulation runs the search may spend.
    #[arg(long, default_value_t = 400)]
    pub runs_max: u64,
}

pub fn shrink(args: &ShrinkArgs) -> Result<Outcome, CliError> {
    let (file, text) = read_text(&args.scenario, super::SCENARIO_BYTES_MAX, "a scenario file")?;
    let job =
        Job::new(&file, &text, args.swarm, VERSION).map_err(|e| CliError::input(e.to_string()))?;
    let options = shrink::Options {
        invariant: args.invariant,
        reseed: args.reseed,
        runs_max: args.runs_max,
        control: None,
    };
    let shrunk =
        shrink::shrink(&job, args.seed, &options).map_err(|e| CliError::input(e.to_string()))?;
    let mut written = format!(
        "# Shrunk by `mxsim shrink` from {file} seed {}{}: violates {} with seed {}.\n",
        args.seed,
        if args.swarm { " --swarm" } else { "" },
        shrunk.invariant,
        shrunk.seed
    );
    written.push_str(&shrunk.text);
    write(&args.out, written.as_bytes())?;
    let out = args.out.display();
    let stdout = format!(
        "before: {}\nafter:  {}\n{} runs; {} still fails\nreproduce: mxsim run {out} --seed {}\n",
        shrunk.before, shrunk.after, shrunk.runs, shrunk.invariant, shrunk.seed
    );
    Ok(Outcome { stdout: stdout.into_bytes(), code: 0 })
}
