//! `serve` and `token`: the HTTP server and the tokens that may call it.

use crate::server::{ServeOptions, Tls};
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use pipeline_ledger::access::{
    Access, KURRENT_ACCESS_STREAM, Role, SQLITE_ACCESS_STREAM, access_store_beside, is_actor_id,
};
use pipeline_ledger::projections::policy::Policy;
use pipeline_ledger::read_models::ReadModels;
use pipeline_ledger::store::files::FileMode;
use pipeline_ledger::store::{Access as StoreAccess, Backend, EventStore, StoreOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The address `serve` listens on by default: this host only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// `serve`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free port; the bound address is printed).
    /// The default serves this host only; put a reverse proxy in front, or give --tls-cert and
    /// --tls-key, before listening on other interfaces.
    #[arg(long, default_value = DEFAULT_LISTEN, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// TLS certificate chain (PEM) to serve HTTPS with rustls; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A reverse proxy in front terminates TLS: mark the dashboard's cookie Secure.
    #[arg(long)]
    pub behind_tls_proxy: bool,
    /// Policy file (default: $PIPELINE_LEDGER_POLICY, ./projections/policy.json, built-in).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

/// The token subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    /// Issue a token and print it once (only its SHA-256 is kept). Its name is recorded as
    /// `recorded_by` of everything it appends.
    #[command(after_long_help = super::examples::TOKEN_CREATE)]
    Create {
        /// writer (append), reader (reports, dashboard), auditor (reports, history, log, feed,
        /// personal data) or admin (tokens).
        #[arg(long, value_name = "ROLE")]
        role: Role,
        /// The token's name: 1–64 letters, digits, '.', '_' or '-'; unique among active tokens.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// When the token stops working (a date means the end of that day, UTC; or RFC 3339).
        #[arg(long, value_name = "T", value_parser = super::parse_end)]
        expires: Option<DateTime<Utc>>,
    },
    /// List every token ever issued, with who issued or revoked it and when (never the token).
    #[command(after_long_help = super::examples::TOKEN_LIST)]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke the active token with this name; every server refuses it within
    /// ACCESS_REFRESH_SECONDS (2 s).
    #[command(after_long_help = super::examples::TOKEN_REVOKE)]
    Revoke {
        /// The name the token was created with (`token list` shows them).
        #[arg(value_name = "NAME")]
        name: String,
        /// Why, recorded with the revocation.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

/// The grants of the ledger at `location`: a store file beside a SQLite ledger, a stream of the
/// same KurrentDB cluster otherwise.
pub fn open_access(
    location: &Path,
    store: &Arc<dyn EventStore>,
    access: StoreAccess,
    mode: FileMode,
) -> anyhow::Result<Access> {
    if Backend::of(&location.to_string_lossy()) == Backend::Kurrent {
        return Ok(Access::new(store.clone(), KURRENT_ACCESS_STREAM));
    }
    let path = access_store_beside(location);
    let options = StoreOptions {
        access,
        file_mode: mode,
    };
    let grants = pipeline_ledger::store::open_url_with(
        &path.to_string_lossy(),
        pipeline_ledger::store::StreamFilter::prefix(SQLITE_ACCESS_STREAM),
        options,
    )
    .with_context(|| format!("cannot open the tokens' store {}", path.display()))?;
    Ok(Access::new(grants, SQLITE_ACCESS_STREAM))
}

/// Who runs this command, as recorded on the grants: the login name when it is a valid actor
/// id, else `operator`.
fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| is_actor_id(u))
        .unwrap_or_else(|| "operator".into())
}

/// Runs a token subcommand.
pub async fn token(cmd: TokenCommand, access: Access, out: &mut dyn Write) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            role,
            name,
            expires,
        } => {
            let issued = access.issue(&name, role, expires, &operator()).await?;
            writeln!(out, "{}", issued.token)?;
            eprintln!(
                "token {name} ({role}) issued{}; it is shown only now: keep it in a secret store",
                expires
                    .map(|e| format!(", expires {}", e.to_rfc3339()))
                    .unwrap_or_default()
            );
        }
        TokenCommand::List { json } => {
            let registry = access.load().await?;
            let now = Utc::now();
            if json {
                serde_json::to_writer_pretty(&mut *out, registry.grants())?;
                writeln!(out)?;
                return Ok(());
            }
            let mut table = crate::present::table::Table::new(
                "",
                &[
                    "name",
                    "role",
                    "status",
                    "issued at",
                    "issued by",
                    "expires",
                    "revoked at",
                    "revoked by",
                    "reason",
                ],
            );
            let time = |t: Option<DateTime<Utc>>| {
                t.map_or("–".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            };
            for g in registry.grants() {
                let status = if g.revoked_at.is_some() {
                    "revoked"
                } else if g.is_active(now) {
                    "active"
                } else {
                    "expired"
                };
                table.row(vec![
                    g.name.clone(),
                    g.role.to_string(),
                    status.into(),
                    time(Some(g.issued_at)),
                    g.issued_by.clone(),
                    time(g.expires_at),
                    time(g.revoked_at),
                    g.revoked_by.clone().unwrap_or_else(|| "–".into()),
                    g.revoke_reason.clone().unwrap_or_else(|| "–".into()),
                ]);
            }
            table.write_text(out, crate::present::table::Layout::for_stdout())?;
        }
        TokenCommand::Revoke { name, reason } => {
            access.revoke(&name, reason, &operator()).await?;
            writeln!(
                out,
                "token {name} revoked; servers refuse it within {} s",
                pipeline_ledger::limits::ACCESS_REFRESH_SECONDS
            )?;
        }
    }
    Ok(())
}

/// Runs the server.
pub async fn serve(
    args: ServeArgs,
    store: Arc<dyn EventStore>,
    read_models: Arc<dyn ReadModels>,
    access: Access,
    vault: Option<Arc<pipeline_ledger::keys::vault::Vault>>,
) -> anyhow::Result<()> {
    let policy = Policy::load(args.policy.as_deref())?;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(Tls { cert, key }),
        (None, None) => None,
        _ => bail!("give --tls-cert and --tls-key together"),
    };
    let secure_cookies = tls.is_some() || args.behind_tls_proxy;
    crate::server::serve(ServeOptions {
        listen: args.listen,
        store,
        read_models,
        access,
        policy,
        tls,
        secure_cookies,
        vault,
    })
    .await
}
