//! `keygen`, `seal` and `verify`: the auditor's commands, and the manifest side of `export` and
//! `import`.

use anyhow::{Context, bail};
use pipeline_ledger::audit::manifest::{self, Manifest, SliceCheck};
use pipeline_ledger::audit::seal::{self, SealCheck};
use pipeline_ledger::audit::verify::{VerifyOptions, VerifyReport, verify};
use pipeline_ledger::keys::{PublicKey, SecretKey};
use pipeline_ledger::store::EventStore;
use pipeline_ledger::store::chain;
use pipeline_ledger::store::files::FileMode;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

/// The auditor's subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Create an Ed25519 key pair for seals and manifests: the secret key in FILE (PKCS#8
    /// PEM, mode 0600) and the public key in FILE.pub (PEM). Never overwrites a key.
    #[command(after_long_help = super::examples::KEYGEN)]
    Keygen {
        /// Where the secret key goes; the public key goes beside it, with `.pub` added.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Verify the whole hash chain, then sign a seal of its head: the store's identity, the
    /// head's position and chain hash, the number of events, the time. Keep seals off the
    /// ledger host, or publish them; `verify --seal` checks them later.
    #[command(after_long_help = super::examples::SEAL)]
    Seal {
        /// The secret key (as `keygen` writes it; must be mode 0600).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Write the seal here (via a temporary file renamed over it) instead of standard
        /// output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Recompute the hash chain and check the log: positions without gaps, revisions gapless
    /// per stream, every event matching the hash recorded when it was appended. Reports the
    /// first position that breaks and what is wrong (content changed, event missing, order
    /// changed, hash replaced, not decodable) and exits with status 1. With --seal, also proves
    /// that the log still holds each sealed prefix unchanged. With --export and --manifest,
    /// checks an exported slice instead of the store.
    #[command(after_long_help = super::examples::VERIFY)]
    Verify {
        /// Start at this position, trusting the chain hash stored just before it.
        #[arg(long, value_name = "POSITION")]
        from: Option<u64>,
        /// A seal to check against the log (repeatable).
        #[arg(long, value_name = "FILE")]
        seal: Vec<PathBuf>,
        /// The key seals and manifests must be signed with: its PEM file (`keygen`'s .pub) or
        /// 64 hex digits. Without it, any valid signature is accepted and its key is printed.
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
        /// Also check every event against its published schema (slower; measured apart).
        #[arg(long)]
        schemas: bool,
        /// Check this exported NDJSON slice against --manifest instead of the store.
        #[arg(long, value_name = "FILE", requires = "manifest")]
        export: Option<PathBuf>,
        /// The manifest `export --manifest` wrote for --export.
        #[arg(long, value_name = "FILE", requires = "export")]
        manifest: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an audit command; `store` opens the store (read-only) when the command needs one.
pub async fn run<F, Fut>(
    command: AuditCommand,
    store: F,
    mode: FileMode,
    out: &mut dyn Write,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<std::sync::Arc<dyn EventStore>>>,
{
    match command {
        AuditCommand::Keygen { out: path } => {
            let key = SecretKey::generate()?;
            let public = key.write(&path)?;
            writeln!(
                out,
                "wrote the secret key {} (0600) and the public key {}\npublic key: {}",
                path.display(),
                public.display(),
                key.public().to_hex()
            )?;
        }
        AuditCommand::Seal { key, output } => {
            let key = SecretKey::read(&key)?;
            let store = store().await?;
            let sealed = seal::seal(&*store, &key).await?;
            let text = serde_json::to_string_pretty(&sealed)? + "\n";
            match output {
                Some(path) => {
                    write_file(&path, text.as_bytes(), mode)?;
                    eprintln!(
                        "sealed {} events up to position {} into {}",
                        sealed.statement.events,
                        sealed.statement.position,
                        path.display()
                    );
                }
                None => out.write_all(text.as_bytes())?,
            }
        }
        AuditCommand::Verify {
            from,
            seal: seals,
            public_key,
            schemas,
            export,
            manifest: manifest_path,
            json,
        } => {
            let pinned = public_key.as_deref().map(PublicKey::read).transpose()?;
            if let (Some(export), Some(manifest_path)) = (export, manifest_path) {
                let manifest = read_manifest(&manifest_path)?;
                let check = check_slice_file(&export, &manifest, pinned.as_ref())?;
                return print_slice(&export, &manifest, &check, json, out);
            }
            let store = store().await?;
            let seals = seals
                .iter()
                .map(|path| {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read the seal {}", path.display()))?;
                    seal::parse(&text).with_context(|| format!("{}", path.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let wanted = seals.iter().map(|s| s.statement.position).collect();
            let started = std::time::Instant::now();
            let report = verify(&*store, VerifyOptions { from, schemas }, wanted).await?;
            let elapsed = started.elapsed();
            let head = store.head_position().await?;
            let checks: Vec<SealCheck> = seals
                .iter()
                .map(|s| seal::check(s, pinned.as_ref(), &report, head))
                .collect();
            print_verify(&report, &checks, elapsed, json, out)?;
            let failed_seals = checks.iter().filter(|c| c.problem.is_some()).count();
            if let Some(b) = &report.first_break {
                bail!("verification failed at position {}: {}", b.position, b.kind);
            }
            if failed_seals > 0 {
                bail!("{failed_seals} seal(s) do not hold");
            }
        }
    }
    Ok(())
}

fn print_verify(
    report: &VerifyReport,
    checks: &[SealCheck],
    elapsed: std::time::Duration,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if json {
        let value = serde_json::json!({
            "verify": report,
            "seals": checks,
        });
        serde_json::to_writer_pretty(&mut *out, &value)?;
        writeln!(out)?;
        return Ok(());
    }
    let span = match (report.first_position, report.last_position) {
        (Some(a), Some(b)) => format!(" (positions {a}–{b})"),
        _ => String::new(),
    };
    writeln!(
        out,
        "checked {} events{span} in {:.2} s",
        report.events,
        elapsed.as_secs_f64()
    )?;
    match &report.first_break {
        None => writeln!(
            out,
            "chain: holds; revisions gapless per stream; positions without gaps"
        )?,
        Some(b) => {
            writeln!(out, "BROKEN at position {}: {}", b.position, b.kind)?;
            writeln!(out, "  {}", b.detail)?;
        }
    }
    if let Some(h) = &report.head_hash {
        writeln!(out, "head hash: {}", chain::to_hex(h))?;
    }
    if report.per_stream {
        writeln!(
            out,
            "chains: one per stream (KurrentDB); the head hash covers every stream's head"
        )?;
    }
    for restarted in &report.restarted_streams {
        writeln!(out, "note: {restarted}")?;
    }
    if report.unhashed_events > 0 {
        writeln!(
            out,
            "note: {} events were written before their stream's chain existed; their hashes were \
             recomputed from each stream's start, which proves nothing about changes made before",
            report.unhashed_events
        )?;
    }
    if let Some(through) = report.upgraded_through {
        writeln!(
            out,
            "note: the chain of positions up to {through} was computed when the store was \
             upgraded, not as they were appended; it proves nothing about changes made before \
             the upgrade"
        )?;
    }
    writeln!(
        out,
        "schemas: {}",
        if report.schemas_checked {
            "every event checked against its published schema"
        } else {
            "not checked (add --schemas)"
        }
    )?;
    for c in checks {
        let key = match c.key_pinned {
            Some(true) => "the pinned key".to_string(),
            Some(false) => format!("key {} (not the pinned one)", c.public_key),
            None => format!("key {} (pin it with --public-key)", c.public_key),
        };
        match &c.problem {
            None => writeln!(
                out,
                "seal at position {} ({}, {key}): holds",
                c.position,
                c.sealed_at.format("%Y-%m-%d %H:%M:%SZ")
            )?,
            Some(p) => writeln!(
                out,
                "seal at position {} ({}, {key}): DOES NOT HOLD: {p}",
                c.position,
                c.sealed_at.format("%Y-%m-%d %H:%M:%SZ")
            )?,
        }
    }
    Ok(())
}

fn print_slice(
    export: &Path,
    manifest: &Manifest,
    check: &SliceCheck,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, check)?;
        writeln!(out)?;
    } else {
        let m = &manifest.statement;
        writeln!(
            out,
            "checked {} events of {} against its manifest (store {}, positions {}–{})",
            check.events,
            export.display(),
            m.store_identity,
            m.first_position.map_or("-".into(), |p| p.to_string()),
            m.last_position.map_or("-".into(), |p| p.to_string()),
        )?;
        let signed = match (check.signed, check.key_pinned) {
            (false, _) => "not signed".to_string(),
            (true, Some(true)) => "signed by the pinned key".to_string(),
            (true, _) => format!(
                "signed by key {} (pin it with --public-key)",
                manifest.public_key.as_deref().unwrap_or("?")
            ),
        };
        writeln!(out, "manifest: {signed}")?;
        match &check.problem {
            None => writeln!(out, "slice: holds; last hash {}", m.last_hash)?,
            Some(p) => {
                let at = p.line.map(|l| format!(" at line {l}")).unwrap_or_default();
                let kind = p.kind.map(|k| format!("{k}: ")).unwrap_or_default();
                writeln!(out, "BROKEN{at}: {kind}{}", p.detail)?;
            }
        }
    }
    if check.problem.is_some() {
        bail!("{} does not match its manifest", export.display());
    }
    Ok(())
}

/// Reads and parses a manifest file.
pub fn read_manifest(path: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the manifest {}", path.display()))?;
    manifest::parse(&text).with_context(|| format!("{}", path.display()))
}

/// Checks the slice in `export` against `manifest`.
pub fn check_slice_file(
    export: &Path,
    manifest: &Manifest,
    pinned: Option<&PublicKey>,
) -> anyhow::Result<SliceCheck> {
    let file =
        std::fs::File::open(export).with_context(|| format!("cannot open {}", export.display()))?;
    Ok(manifest::check_slice(
        &mut BufReader::new(file),
        manifest,
        pinned,
    )?)
}

/// Writes `bytes` into `path` through a temporary file beside it, synced, then renamed over it.
pub fn write_file(path: &Path, bytes: &[u8], mode: FileMode) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?
        .to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = pipeline_ledger::store::files::create_new_file(&temp, mode)
            .with_context(|| format!("cannot create {}", temp.display()))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
            .with_context(|| format!("cannot rename {} to {}", temp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
