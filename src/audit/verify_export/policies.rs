//! The policies file (format 2): one record for every `PipelineConfigured`
//! among the exported records, each agreeing with the record it names —
//! who applied it, when, from where, the definition, and what it changed
//! against the policy version before it (recomputed from the records; for
//! the first pipeline of an export that starts after the project's first
//! record, the version before is not in the export and its changes are
//! taken as stated).

use std::io::BufRead;
use std::path::Path;

use waybill_projections::audit::export::{Manifest, Policies, PolicyRecord, FORMAT};

use super::Findings;

/// Checks the policies file of `dir` against `expected`, made from the
/// records walked; `from_start`: the export starts at the project's first
/// record.
pub fn check(
    dir: &Path,
    manifest: &Manifest,
    expected: &Policies,
    from_start: bool,
    f: &mut Findings,
) {
    let Some(stated) = &manifest.policies else {
        if manifest.format == FORMAT {
            f.problem(format!(
                "the manifest of a {FORMAT} export states no policies file"
            ));
        }
        return;
    };
    let name = &stated.file;
    let file = match std::fs::File::open(dir.join(name)) {
        Ok(file) => file,
        Err(e) => {
            f.problem(format!("{name}: cannot be read: {e}"));
            return;
        }
    };
    let mut found: Vec<(u64, PolicyRecord)> = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = i as u64 + 1;
        match line
            .map_err(|e| e.to_string())
            .and_then(|l| serde_json::from_str::<PolicyRecord>(&l).map_err(|e| e.to_string()))
        {
            Ok(record) => found.push((line_no, record)),
            Err(e) => f.problem(format!("{name} line {line_no}: not a policy record: {e}")),
        }
    }
    let problems = f.problems.len();
    if found.len() as u64 != stated.count {
        f.problem(format!(
            "{name} holds {} records; the manifest states {}",
            found.len(),
            stated.count
        ));
    }
    for (i, want) in expected.records.iter().enumerate() {
        let version = want.policy_version;
        let Some((line_no, got)) = found.iter().find(|(_, r)| r.policy_version == version) else {
            f.problem(format!(
                "{name} has no record of the pipeline applied at position {version}"
            ));
            continue;
        };
        let changes_known = i > 0 || from_start;
        let fields = [
            ("project", got.project == want.project),
            ("applied_at", got.applied_at == want.applied_at),
            ("applied_by", got.applied_by == want.applied_by),
            ("applied_auth", got.applied_auth == want.applied_auth),
            ("source_uri", got.source_uri == want.source_uri),
            (
                "source_revision",
                got.source_revision == want.source_revision,
            ),
            ("source_digest", got.source_digest == want.source_digest),
            ("definition", got.definition == want.definition),
            ("changes", !changes_known || got.changes == want.changes),
        ];
        for (field, agrees) in fields {
            if !agrees {
                f.problem(format!(
                    "{name} line {line_no}: its {field} field does not match the pipeline \
                     applied at position {version}"
                ));
            }
        }
    }
    for (line_no, got) in &found {
        let named = expected
            .records
            .iter()
            .any(|r| r.policy_version == got.policy_version);
        if !named {
            f.problem(format!(
                "{name} line {line_no}: position {} is no pipeline applied among the records",
                got.policy_version
            ));
        }
    }
    if f.problems.len() == problems {
        f.fact(
            "policies",
            match found.len() {
                1 => "1 record, matching its PipelineConfigured record".to_string(),
                n => format!("{n} records, each matching its PipelineConfigured record"),
            },
        );
    }
}
