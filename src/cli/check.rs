//! `mxsim check TRACE.jsonl [--format text|json|junit]`: re-check a trace written by
//! `mxsim run`, offline.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use crate::check::{self, Verdict};
use crate::cli::run::{describe_failed_actions, describe_violations};
use crate::cli::{CliError, Outcome, read_trace};
use crate::trace::Trace;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// A `trace.jsonl` written by `mxsim run`.
    pub trace: PathBuf,
    /// Output: a human verdict (`text`), one JSON object (`json`), or JUnit XML with one
    /// test case per checked invariant (`junit`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: CheckFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckFormat {
    Text,
    Json,
    Junit,
}

pub fn check(args: &CheckArgs) -> Result<Outcome, CliError> {
    let (file, trace, trace_hash) = read_trace(&args.trace)?;
    let verdict = check::check(&trace);
    let code = if verdict.passed() { 0 } else { 1 };
    match args.format {
        CheckFormat::Text => {}
        CheckFormat::Json => {
            let value = json!({
                "scenario": trace.header.scenario,
                "seed": trace.header.seed,
                "mxsim_version": trace.header.mxsim_version,
                "trace_hash": trace_hash,
                "verdict": if verdict.passed() { "pass" } else { "fail" },
                "checked": verdict.checked,
                "violations": verdict.violations,
            });
            let mut stdout = serde_json::to_vec(&value).expect("a verdict serializes");
            stdout.push(b'\n');
            return Ok(Outcome { stdout, code });
        }
        CheckFormat::Junit => {
            return Ok(Outcome { stdout: check_junit(&trace, &verdict, &file).into_bytes(), code });
        }
    }
    let mut stdout = String::new();
    let status = if verdict.passed() { "PASS" } else { "FAIL" };
    let _ = writeln!(
        stdout,
        "{status} {} seed {}: checked {}; trace {}",
        trace.header.scenario,
        trace.header.seed,
        verdict.checked.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(", "),
        &trace_hash[..16],
    );
    describe_violations(&verdict, &mut stdout);
    describe_failed_actions(&trace, &mut stdout);
    Ok(Outcome { stdout: stdout.into_bytes(), code: if verdict.passed() { 0 } else { 1 } })
}

/// JUnit XML for one checked trace: a test case per checked invariant, failing with the
/// violations' messages.
fn check_junit(trace: &Trace, verdict: &Verdict, file: &str) -> String {
    use crate::sweep::results::xml_escape;
    let failures = verdict
        .checked
        .iter()
        .filter(|id| verdict.violations.iter().any(|v| v.invariant == **id))
        .count();
    let suite = xml_escape(&format!("{} seed {}", trace.header.scenario, trace.header.seed));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">",
        verdict.checked.len()
    );
    for id in &verdict.checked {
        let name = xml_escape(id.as_str());
        let violations: Vec<&check::Violation> =
            verdict.violations.iter().filter(|v| v.invariant == *id).collect();
        let _ = write!(out, "  <testcase classname=\"mxsim.check\" name=\"{name}\"");
        if violations.is_empty() {
            out.push_str("/>\n");
            continue;
        }
        let messages: Vec<String> = violations.iter().map(|v| v.message.clone()).collect();
        let _ = writeln!(
            out,
            ">\n    <failure message=\"{} violation(s)\" type=\"{name}\">{}\n{}</failure>\n  </testcase>",
            violations.len(),
            xml_escape(&messages.join("\n")),
            xml_escape(&format!("trace: {file}"))
        );
    }
    out.push_str("</testsuite>\n");
    out
}
