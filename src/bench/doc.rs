//! `docs/BENCHMARKS.md`: each benchmark owns one marked section of the file,
//! `<!-- bench:<name>:start -->` … `<!-- bench:<name>:end -->`, which a run
//! replaces; everything outside the markers is preserved.

use std::path::Path;

use anyhow::{bail, Context as _};

/// Written when the file does not exist yet.
const HEADER: &str = "\
# Benchmarks

Every figure here is produced by `waybill bench` and measured beside a raw
JetStream baseline **in the same run, against the same nats-server**: the
ratio (Waybill ÷ raw) is the number that matters, because absolute figures
move with the machine, the disk and the server's fsync setting.

The raw baseline does what Waybill needs from JetStream and nothing more: a
stream with Waybill's configuration (file storage, limits retention, deny
delete/purge, same replicas and duplicate window) under its own name, and
publishes carrying `Nats-Msg-Id` plus the subject-filtered
`Nats-Expected-Last-Subject-Sequence`, with a payload as long as a typical
Waybill record. Waybill's side goes through the `EventLog` trait, so it pays
for everything a real append or replay pays for: validation, protobuf
encoding, the hash chain, decoding and re-hashing on read, and the headers
every Waybill message carries and raw messages do not (six CloudEvents
`ce-*` attributes and `Waybill-Hash`), which the server
stores and sends and the client builds and parses.
The sled rows are the embedded backend (no NATS at all), shown against the
same raw JetStream figures for scale.

Reproduce (spawns a pinned nats-server on a free port with a temp store):

```sh
scripts/install-nats-server   # once
cargo run --release -- bench log --write docs/BENCHMARKS.md
```

Each section records the exact command, the machine, the date and the
server version of the run that produced it.
";

/// The text of `existing` (or a new file) with section `name` set to `body`.
pub fn replace_section(existing: Option<&str>, name: &str, body: &str) -> anyhow::Result<String> {
    let start = format!("<!-- bench:{name}:start -->");
    let end = format!("<!-- bench:{name}:end -->");
    let mut body = body.to_string();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let section = format!("{start}\n{body}{end}");
    let Some(text) = existing else {
        return Ok(format!("{HEADER}\n{section}\n"));
    };
    match (text.find(&start), text.find(&end)) {
        (Some(s), Some(e)) if s < e => {
            Ok(format!("{}{section}{}", &text[..s], &text[e + end.len()..]))
        }
        (None, None) => {
            let separator = match text {
                "" => "",
                t if t.ends_with("\n\n") => "",
                t if t.ends_with('\n') => "\n",
                _ => "\n\n",
            };
            Ok(format!("{text}{separator}{section}\n"))
        }
        _ => bail!("the markers {start} and {end} are missing, misordered or unpaired"),
    }
}

/// Replaces section `name` of the file at `path` (created when absent),
/// writing through a temp file so that a failure leaves the old file intact.
pub fn write_section(path: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let text = replace_section(existing.as_deref(), name, body)
        .with_context(|| format!("updating {}", path.display()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_file_with_a_header() {
        let text = replace_section(None, "log", "table").expect("new file");
        assert!(text.starts_with("# Benchmarks\n"));
        assert!(text.ends_with("<!-- bench:log:start -->\ntable\n<!-- bench:log:end -->\n"));
    }

    #[test]
    fn replaces_only_the_section() {
        let before = "# Mine\nintro\n<!-- bench:log:start -->\nold\nrows\n\
                      <!-- bench:log:end -->\noutro\n<!-- bench:other:start -->\nkeep\n\
                      <!-- bench:other:end -->\n";
        let after = replace_section(Some(before), "log", "new\n").expect("replaced");
        assert_eq!(
            after,
            "# Mine\nintro\n<!-- bench:log:start -->\nnew\n<!-- bench:log:end -->\noutro\n\
             <!-- bench:other:start -->\nkeep\n<!-- bench:other:end -->\n"
        );
        let again = replace_section(Some(&after), "log", "new\n").expect("replaced");
        assert_eq!(again, after, "replacing is idempotent");
    }

    #[test]
    fn appends_a_missing_section() {
        let after = replace_section(Some("# Mine\ntext\n"), "log", "rows").expect("appended");
        assert_eq!(
            after,
            "# Mine\ntext\n\n<!-- bench:log:start -->\nrows\n<!-- bench:log:end -->\n"
        );
    }

    #[test]
    fn refuses_broken_markers() {
        let unpaired = "a\n<!-- bench:log:start -->\nb\n";
        assert!(replace_section(Some(unpaired), "log", "x").is_err());
        let misordered = "<!-- bench:log:end -->\n<!-- bench:log:start -->\n";
        assert!(replace_section(Some(misordered), "log", "x").is_err());
    }

    #[test]
    fn writes_and_rewrites_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("docs/BENCHMARKS.md");
        write_section(&path, "log", "one").expect("created");
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("\nnotes kept\n");
        std::fs::write(&path, &text).expect("edit");
        write_section(&path, "log", "two").expect("rewritten");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("\ntwo\n") && !text.contains("\none\n"));
        assert!(text.ends_with("\nnotes kept\n"));
    }
}
