//! `waybill export`: takes a compliance export through the audit service and
//! writes it to a directory (first under a temporary name, renamed when
//! complete, so a directory of that name is always a whole export).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use waybill_projections::audit::export::{
    promotions_file, Manifest, CHECKPOINT_FILE, EVENTS_FILE, MANIFEST_FILE, MANIFEST_SIG_FILE,
    POLICIES_FILE, PROOF_FILE,
};
use waybill_proto::v1 as pb;
use waybill_proto::v1::audit_service_client::AuditServiceClient;

use crate::client::{channel, ClientArgs};

/// `waybill export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The project to export.
    #[arg(long, short = 'p', env = "WAYBILL_PROJECT")]
    pub project: String,
    /// From this time (inclusive; RFC 3339, or a date and time in UTC)
    /// [default: the project's first event].
    #[arg(long, value_parser = crate::client::time_arg)]
    pub from: Option<String>,
    /// To this time (exclusive; RFC 3339, or a date and time in UTC)
    /// [default: the project's last event].
    #[arg(long, value_parser = crate::client::time_arg)]
    pub to: Option<String>,
    /// Format of the promotions file.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Directory to create (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

struct Open {
    file: std::io::BufWriter<std::fs::File>,
    hasher: Sha256,
    bytes: u64,
}

/// Runs the export; exit 1 when the server refuses, 2 when it is unreachable.
pub async fn run(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let client = &args.client;
    if args.out.exists() && std::fs::read_dir(&args.out)?.next().is_some() {
        bail!("{} exists and is not empty", args.out.display());
    }
    let (ch, bearer) = channel(client).await?;
    let mut audit = AuditServiceClient::with_interceptor(ch, bearer)
        .max_decoding_message_size(16 * 1024 * 1024);
    let request = pb::ExportRequest {
        project: args.project.clone(),
        from: args.from.clone().unwrap_or_default(),
        to: args.to.clone().unwrap_or_default(),
        format: match args.format {
            Format::Jsonl => pb::ExportFormat::Jsonl,
            Format::Csv => pb::ExportFormat::Csv,
        } as i32,
    };
    let mut stream = match audit.export(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => return Ok(crate::client::refused(client.output, &status)),
    };
    let tmp = temp_dir(&args.out)?;
    let bar = progress_bar();
    let result = receive(&mut stream, &tmp, args, &bar).await;
    bar.finish_and_clear();
    match result {
        Ok(Ok(())) => {}
        Ok(Err(status)) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Ok(crate::client::refused(client.output, &status));
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    }
    // Every file is synced as it completes; then the names in the export,
    // and the export's own name once it is moved into place.
    crate::durable::sync_dir(&tmp).with_context(|| format!("cannot sync {}", tmp.display()))?;
    if args.out.exists() {
        std::fs::remove_dir(&args.out)?;
    }
    std::fs::rename(&tmp, &args.out)
        .with_context(|| format!("cannot move the export to {}", args.out.display()))?;
    crate::durable::sync_parent(&args.out)
        .with_context(|| format!("cannot sync the directory of {}", args.out.display()))?;
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(args.out.join(MANIFEST_FILE))?)?;
    let policies = manifest.policies.as_ref().map_or(0, |p| p.count);
    if client.output == crate::client::Output::Json {
        outln!(
            "{}",
            serde_json::json!({
                "dir": args.out.display().to_string(),
                "project": manifest.project,
                "events": manifest.events.count,
                "first_position": manifest.events.first_position,
                "last_position": manifest.events.last_position,
                "promotions": manifest.promotions.count,
                "policies": policies,
                "tree_size": manifest.checkpoint.size,
                "root": manifest.checkpoint.root,
                "public_key": manifest.public_key,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let events = match manifest.events.count {
        0 => "no events (none in the range asked)".to_string(),
        1 => format!("1 event (position {})", manifest.events.first_position),
        n => format!(
            "{n} events (positions {}..{})",
            manifest.events.first_position, manifest.events.last_position
        ),
    };
    let promotions = manifest.promotions.count;
    outln!(
        "exported {events}, {promotions} promotion{} and {policies} polic{} of {} to {}",
        if promotions == 1 { "" } else { "s" },
        if policies == 1 { "y" } else { "ies" },
        manifest.project,
        args.out.display()
    );
    outln!(
        "checkpoint: tree size {} root {}, signed by {}",
        manifest.checkpoint.size,
        manifest.checkpoint.root,
        manifest.public_key
    );
    outln!(
        "verify it with: waybill verify-export {} --pubkey '{}'",
        args.out.display(),
        manifest.public_key
    );
    Ok(ExitCode::SUCCESS)
}

fn temp_dir(out: &Path) -> anyhow::Result<PathBuf> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "export".to_string());
    let tmp = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    Ok(tmp)
}

fn progress_bar() -> ProgressBar {
    crate::progress::terminal_bar(
        0,
        "exporting {bar:40} {pos}/{len} events ({per_sec}, {eta})",
    )
}

/// Writes the streamed files; `Ok(Err(status))` when the server stopped with an error.
async fn receive(
    stream: &mut tonic::Streaming<pb::ExportChunk>,
    dir: &Path,
    args: &ExportArgs,
    bar: &ProgressBar,
) -> anyhow::Result<Result<(), tonic::Status>> {
    let csv = args.format == Format::Csv;
    let allowed = [
        EVENTS_FILE,
        PROOF_FILE,
        CHECKPOINT_FILE,
        MANIFEST_FILE,
        MANIFEST_SIG_FILE,
        POLICIES_FILE,
        promotions_file(csv),
    ];
    let mut open: BTreeMap<String, Open> = BTreeMap::new();
    let mut done: Vec<String> = Vec::new();
    loop {
        let chunk = match stream.message().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(status) => return Ok(Err(status)),
        };
        use pb::export_chunk::Part;
        match chunk.part {
            Some(Part::Data(d)) => {
                if !allowed.contains(&d.file.as_str()) || done.contains(&d.file) {
                    bail!("the server sent data for an unexpected file {:?}", d.file);
                }
                let entry = match open.entry(d.file.clone()) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => {
                        let path = dir.join(&d.file);
                        let file = std::fs::File::create(&path)
                            .with_context(|| format!("cannot create {}", path.display()))?;
                        v.insert(Open {
                            file: std::io::BufWriter::new(file),
                            hasher: Sha256::new(),
                            bytes: 0,
                        })
                    }
                };
                entry.file.write_all(&d.bytes)?;
                entry.hasher.update(&d.bytes);
                entry.bytes += d.bytes.len() as u64;
            }
            Some(Part::Done(f)) => {
                if !allowed.contains(&f.file.as_str()) || done.contains(&f.file) {
                    bail!("the server completed an unexpected file {:?}", f.file);
                }
                let (sha, bytes) = match open.remove(&f.file) {
                    Some(mut o) => {
                        o.file.flush()?;
                        o.file.get_ref().sync_all()?;
                        (hex::encode(o.hasher.finalize()), o.bytes)
                    }
                    None => {
                        // An empty file.
                        std::fs::File::create(dir.join(&f.file))?;
                        (hex::encode(Sha256::digest(b"")), 0)
                    }
                };
                if sha != f.sha256 || bytes != f.bytes {
                    bail!(
                        "{} arrived damaged: {bytes} bytes with SHA-256 {sha}, the server sent \
                         {} bytes with {}",
                        f.file,
                        f.bytes,
                        f.sha256
                    );
                }
                done.push(f.file);
            }
            Some(Part::Progress(p)) => {
                bar.set_length(p.total);
                bar.set_position(p.done);
            }
            None => {}
        }
    }
    let missing: Vec<&str> = allowed
        .iter()
        .copied()
        .filter(|f| !done.iter().any(|d| d == f))
        .collect();
    if !missing.is_empty() {
        bail!("the export ended without {}", missing.join(", "));
    }
    Ok(Ok(()))
}
