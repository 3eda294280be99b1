//! `trellis audit`: the installed plugins the registries' security advisories name, like
//! `cargo audit` (exit code 1 when there are findings at or above `--severity`).

use clap::Args;
use trellis_client::store::AdvisoryFinding;
use trellis_schema::advisory::{Severity, severity_word};

use crate::{CliResult, Context, Failure};

#[derive(Args)]
pub(crate) struct AuditArgs {
    /// Fail (exit code 1) only for findings at least this severe: low, medium, high or
    /// critical (unrated findings count as low). Every finding is listed either way.
    #[arg(long, value_parser = parse_severity, default_value = "low")]
    severity: Severity,
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    match text {
        "low" => Ok(Severity::Low),
        "medium" => Ok(Severity::Medium),
        "high" => Ok(Severity::High),
        "critical" => Ok(Severity::Critical),
        _ => Err(format!("`{text}` is not a severity; use low, medium, high or critical")),
    }
}

fn line(finding: &AdvisoryFinding) -> String {
    let severity = finding.severity.map_or("unrated", severity_word);
    let mut text = format!("{} {}: {} ({severity}) {}", finding.plugin, finding.version, finding.id, finding.summary);
    if let Some(component) = &finding.component {
        text.push_str(&format!("; bundled {} {}", component.name, component.versions.join(", ")));
    }
    if !finding.ranges.is_empty() {
        text.push_str(&format!("; affected {}", finding.ranges.join(" | ")));
    }
    match &finding.fixed {
        Some(fixed) => text.push_str(&format!("; fixed in {fixed} (`trellis update {}`)", finding.plugin)),
        None => text.push_str("; no fixed release yet"),
    }
    if let Some(url) = &finding.url {
        text.push_str(&format!("; {url}"));
    }
    text
}

pub(crate) fn audit(ctx: &Context, args: AuditArgs) -> CliResult {
    let mut store = ctx.open()?;
    let findings = store.audit()?;
    if ctx.out.json {
        ctx.out.result(&findings);
    } else if findings.is_empty() {
        outln!("no installed plugin is named by a security advisory");
    } else {
        for finding in &findings {
            outln!("{}", line(finding));
        }
    }
    let failing = findings.iter().filter(|f| f.severity.unwrap_or(Severity::Low) >= args.severity).count();
    if failing > 0 {
        Err(Failure::FailedAfterResult(format!(
            "{failing} installed release(s) are named by security advisories; update them (`trellis update`) or remove them"
        )))
    } else {
        Ok(())
    }
}
