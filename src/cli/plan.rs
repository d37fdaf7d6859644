//! `qsync plan`: the dry run. Loads the spec with its sample (or, with `--live`, the first
//! page fetched for real), takes the high-water mark from the flags or, with `--stored`,
//! from the target database (read only, through the sink), and prints the plan's
//! explanation ([`crate::dryrun::explain`]) to stdout. Nothing is written anywhere.

use std::path::PathBuf;

use chrono::NaiveDateTime;

use super::{block_on, parse_time, report_load_error, Outcome};
use crate::config::EnvPolicy;
use crate::frontend;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The spec to plan.
    pub spec: PathBuf,
    /// Connection profile; default `qsync.yaml` beside the spec, then in the working directory.
    #[arg(long, env = "QSYNC_PROFILE")]
    pub profile: Option<PathBuf>,
    /// A vendor response to turn into rows; default `samples/<spec name>.json` beside the spec.
    #[arg(long)]
    pub sample: Option<PathBuf>,
    /// The run's clock, `yyyy-MM-dd HH:mm:ss` in the source time zone (default: now).
    #[arg(long, value_parser = parse_time)]
    pub at: Option<NaiveDateTime>,
    /// The high-water mark to plan from, as if stored by an earlier run.
    #[arg(long, value_parser = parse_time, conflicts_with = "stored")]
    pub last_sync: Option<NaiveDateTime>,
    /// Plan from the high-water mark stored in the target database (read only).
    #[arg(long)]
    pub stored: bool,
    /// Start of the range, overriding the stored mark.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<NaiveDateTime>,
    /// End of the range (default: now minus the window's lag).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<NaiveDateTime>,
    /// Plan the omission-remedy run instead.
    #[arg(long)]
    pub remedy: bool,
    /// Rows of the sample to show.
    #[arg(long, default_value_t = 3)]
    pub rows: usize,
    /// Fetch the first page for real and show its rows (the only network access of `plan`).
    #[arg(long, conflicts_with = "sample")]
    pub live: bool,
}

pub(super) fn plan(args: &PlanArgs) -> Outcome {
    // With --live the first page is the sample; the bundled sample file is not read.
    let sample = if args.live {
        None
    } else {
        args.sample
            .clone()
            .or_else(|| frontend::find_sample(&args.spec))
    };
    let loaded = match frontend::load(
        &args.spec,
        args.profile.as_deref(),
        EnvPolicy::Require,
        sample.as_deref(),
    ) {
        Ok(l) => l,
        Err(e) => {
            report_load_error(&e);
            return Outcome::Failed;
        }
    };
    if !loaded.warnings.is_empty() {
        eprint!(
            "{}",
            crate::check::render(
                &args.spec.display().to_string(),
                &loaded.text,
                &loaded.warnings
            )
        );
    }
    let stored = if args.stored {
        match stored_mark(&loaded) {
            Ok(mark) => mark,
            Err(e) => {
                eprintln!("error: cannot read the stored high-water mark: {e}");
                return Outcome::Failed;
            }
        }
    } else {
        None
    };
    let mut inputs = crate::dryrun::DryRunInputs {
        at: args.at,
        last_sync: args.last_sync.or(stored),
        since: args.since,
        until: args.until,
        remedy: args.remedy,
        profile: loaded.profile.as_ref(),
        sample: loaded.sample.as_ref(),
        max_rows: args.rows,
        live: args.live,
    };
    let live_sample = if args.live {
        let Some(profile) = loaded.profile.as_ref() else {
            eprintln!("error: --live needs a profile (qsync.yaml) with the source connection");
            return Outcome::Failed;
        };
        let fetched = block_on(crate::dryrun::fetch_live_page(
            &loaded.plan,
            profile,
            &inputs,
        ))
        .and_then(|page| page.map_err(|e| e.to_string()));
        match fetched {
            Ok(page) => Some(page),
            Err(e) => {
                eprintln!("error: the live first page failed: {e}");
                return Outcome::Failed;
            }
        }
    } else {
        None
    };
    if live_sample.is_some() {
        inputs.sample = live_sample.as_ref();
    }
    let explained = crate::dryrun::explain(&loaded.plan, &inputs);
    print!("{}", explained.text);
    if explained.failures.is_empty() {
        Outcome::Ok
    } else {
        // A run would stop at the same place: say so on stderr and exit 1.
        for failure in &explained.failures {
            eprintln!("error: {failure}");
        }
        Outcome::Failed
    }
}

/// `plan --stored`: the mark `_qsync_state` holds for this spec, reading only.
fn stored_mark(loaded: &frontend::Loaded) -> Result<Option<NaiveDateTime>, String> {
    let plan = &loaded.plan;
    let profile = loaded
        .profile
        .as_ref()
        .ok_or("--stored needs a profile (qsync.yaml) with the target connection")?;
    let url = profile
        .target_url(&plan.target.connection)
        .map_err(|e| e.to_string())?;
    block_on(crate::sink::StateStore::stored_high_water(&url, &plan.name))?
        .map_err(|e| crate::config::mask(&e.to_string(), &profile.secrets()))
}
