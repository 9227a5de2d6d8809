//! `chat-ops`: what an operator runs against the deployed tables, with
//! their own AWS credentials (IAM is the access control; the public API has
//! no admin route). Table names come from the same variables the functions
//! read (`USERS_TABLE`, `CREDENTIALS_TABLE`, `CHATS_TABLE`);
//! `AWS_ENDPOINT_URL` points it at DynamoDB Local.

use std::io::IsTerminal;
use std::process::ExitCode;

use chat_core::auth::KEY_REFRESH;
use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use chat_core::domain::Username;
use chat_core::store::USERNAME;
use chat_core::store::{Audit, GrantOutcome, Migrated, Rotation, Usage, UsageGroup, UsageRow};
use chat_core::{ApiError, App, Config};
use clap::{Parser, Subcommand};

mod catalog;

#[derive(Parser)]
#[command(
    name = "chat-ops",
    about = "Operator tools for the token-metered chat API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Tables(TableCommand),
    /// The catalog of models: check a file, show the one served, or make
    /// the stack's parameters of it (no table is touched).
    Catalog {
        #[command(subcommand)]
        command: catalog::CatalogCommand,
    },
}

/// What works on the tables, with the operator's credentials.
#[derive(Subcommand)]
enum TableCommand {
    /// Add tokens to a user's balance (negative: take them back, never
    /// below zero), with a ledger entry. Give the same --op-id to retry:
    /// it applies once, and an id once used (for any user) is never applied
    /// to another grant.
    Grant {
        user: String,
        #[arg(allow_negative_numbers = true)]
        tokens: i64,
        /// Why, for the ledger.
        #[arg(long)]
        reason: String,
        /// The operation's id (letters, digits, . - _); a new one when left
        /// out, printed so a retry can give it.
        #[arg(long)]
        op_id: Option<String>,
    },
    /// A user's balance, state, sessions and newest ledger entries.
    Show { user: String },
    /// Set the balance below which the user's alert fires (one event on
    /// the stack's alert bus per crossing), or `off` to clear it; the same
    /// threshold the user sets with `PATCH /balance/`.
    Alert {
        user: String,
        /// Tokens (0 to 1000000000000), or `off`.
        below: String,
    },
    /// End every session and API key of a user at once.
    Revoke { user: String },
    /// Make single-use invite codes, for REGISTRATION=invite. Each is
    /// printed once; only its hash is kept.
    Invite {
        /// How many codes.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        count: u32,
        /// A note kept with each code, e.g. whom it is for.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Stop a user from logging in, chatting or reading, from the next request.
    Disable { user: String },
    /// Undo `disable`.
    Enable { user: String },
    /// Make a new token-signing key: new tokens are signed with it (every
    /// function reads it within 5 minutes), and the key it replaces keeps
    /// verifying what it signed until it is retired.
    RotateKey,
    /// Retire a key replaced by `rotate-key`: the tokens it signed stop
    /// working. Refused while one of them can still be live (a session
    /// within SESSION_TTL_SECONDS of the rotation, an unexpired API key made
    /// before it), unless --force (a leaked key: end its tokens now).
    RetireKey {
        /// The key's id, as rotate-key printed it.
        id: u8,
        /// Retire it even though tokens it signed are still live.
        #[arg(long)]
        force: bool,
    },
    /// Upgrade the tables of a stack deployed before the account item and
    /// the ledger: each password hash still in the users table moves to the
    /// credentials table, and each account with no ledger gets an opening
    /// entry for its balance. Safe to run again; exits 1 if an item was
    /// left as it is.
    Migrate,
    /// Check that each balance equals the sum of its ledger: one user, or
    /// every account (a paginated scan). Exits 1 if any differs.
    Audit {
        /// The user to check; every account when left out.
        user: Option<String>,
    },
    /// Where tokens went, from the ledger: one user's, or every account's
    /// (a paginated scan), by day unless --by says otherwise. Columns:
    /// user, group, charged, granted, net, entries; then the total.
    Usage {
        /// The user to read; every account when left out.
        user: Option<String>,
        /// The window's start, included: a UTC day or date-time (default:
        /// 30 days before --to).
        #[arg(long)]
        from: Option<String>,
        /// The window's end, excluded (default: now).
        #[arg(long)]
        to: Option<String>,
        /// day, model or key.
        #[arg(long, default_value = "day")]
        by: String,
        /// CSV, a header line first, for a spreadsheet.
        #[arg(long)]
        csv: bool,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let command = match Cli::parse().command {
        Command::Catalog { command } => return catalog::run(command),
        Command::Tables(command) => command,
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chat-ops: {e}");
            return ExitCode::from(2);
        }
    };
    let app = App::new(config, chat_core::app::dynamodb_client().await);
    let result = match command {
        TableCommand::Audit { user } => audit(&app, user).await,
        TableCommand::Usage {
            user,
            from,
            to,
            by,
            csv,
        } => usage(&app, user, (from, to), &by, csv).await,
        TableCommand::Grant {
            user,
            tokens,
            reason,
            op_id,
        } => grant(&app, &user, tokens, &reason, op_id).await,
        TableCommand::Show { user } => show(&app, &user).await,
        TableCommand::Alert { user, below } => set_alert(&app, &user, &below).await,
        TableCommand::Revoke { user } => revoke(&app, &user).await,
        TableCommand::Invite { count, note } => invite(&app, count, &note).await,
        TableCommand::Disable { user } => set_disabled(&app, &user, true).await,
        TableCommand::Enable { user } => set_disabled(&app, &user, false).await,
        TableCommand::RotateKey => rotate_key(&app).await,
        TableCommand::Migrate => migrate(&app).await,
        TableCommand::RetireKey { id, force } => retire_key(&app, id, force).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chat-ops: {e}");
            ExitCode::from(2)
        }
    }
}

fn username(name: &str) -> Result<Username, ApiError> {
    Username::parse_existing(name).map_err(|e| ApiError::invalid_field("user", e))
}

fn no_account(name: &str) -> ExitCode {
    eprintln!("chat-ops: no account {name:?}");
    ExitCode::from(2)
}

async fn grant(
    app: &App,
    name: &str,
    tokens: i64,
    reason: &str,
    op_id: Option<String>,
) -> Result<ExitCode, ApiError> {
    let user = username(name)?;
    let op_id = op_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let outcome = app
        .store
        .grant(&user, tokens, reason, &op_id, Deadline::none())
        .await?;
    Ok(match outcome {
        GrantOutcome::Applied => {
            println!("granted {tokens} to {user} (operation {op_id})");
            ExitCode::SUCCESS
        }
        GrantOutcome::AlreadyApplied => {
            println!("operation {op_id} was applied before; nothing changed");
            ExitCode::SUCCESS
        }
        GrantOutcome::IdReused {
            user: earlier_user,
            amount,
        } => {
            eprintln!("chat-ops: operation {op_id} was a grant of {amount} to {earlier_user}, not {tokens} to {user}; nothing changed");
            ExitCode::from(1)
        }
        GrantOutcome::NoAccount => no_account(name),
        GrantOutcome::WouldGoNegative { balance } => {
            eprintln!("chat-ops: {user} has {balance} tokens; a grant of {tokens} would go below zero; nothing changed");
            ExitCode::from(1)
        }
    })
}

async fn show(app: &App, name: &str) -> Result<ExitCode, ApiError> {
    let user = username(name)?;
    let Some(view) = app.store.account_view(&user, 20).await? else {
        return Ok(no_account(name));
    };
    println!("user:     {user}");
    println!("balance:  {}", view.balance);
    println!(
        "state:    {}",
        if view.disabled { "disabled" } else { "active" }
    );
    println!(
        "alert:    {}",
        view.alert_below
            .map_or("none".to_owned(), |below| format!("below {below}"))
    );
    println!(
        "sessions: {} (expiries, epoch seconds: {:?})",
        view.sessions.len(),
        view.sessions
    );
    println!("api keys: {}", view.keys.len());
    for key in &view.keys {
        println!(
            "  {}  {:<20} {}  created {}  expires {}  last used {}",
            key.id,
            key.name,
            key.prefix,
            key.created_at,
            key.expires_at
                .map_or("never".to_owned(), |at| at.to_string()),
            key.last_used.as_deref().unwrap_or("never"),
        );
    }
    println!("recent ledger entries, newest first:");
    for line in &view.recent {
        println!(
            "  {}  {:>+8}  {:<8} {}",
            line.at, line.amount, line.kind, line.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_alert(app: &App, name: &str, below: &str) -> Result<ExitCode, ApiError> {
    let user = username(name)?;
    let below = match below {
        "off" => None,
        number => Some(number.parse::<u64>().map_err(|_| {
            ApiError::invalid_field("below", "must be a whole number of tokens, or off")
        })?),
    };
    if !app.store.set_alert_below(&user, below).await? {
        return Ok(no_account(name));
    }
    match below {
        Some(below) => println!("{user}'s alert fires when the balance falls below {below}"),
        None => println!("{user} has no balance alert"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke(app: &App, name: &str) -> Result<ExitCode, ApiError> {
    let user = username(name)?;
    Ok(match app.store.end_all_sessions(&user).await? {
        Some(ended) => {
            // The keys stopped working with the write above; their
            // details are tidied after it.
            app.store.forget_keys(&user).await?;
            println!("ended {ended} sessions and API keys of {user}");
            ExitCode::SUCCESS
        }
        None => no_account(name),
    })
}

async fn invite(app: &App, count: u32, note: &str) -> Result<ExitCode, ApiError> {
    for _ in 0..count {
        println!("{}", app.store.create_invite(note, Timestamp::now()).await?);
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_disabled(app: &App, name: &str, disabled: bool) -> Result<ExitCode, ApiError> {
    let user = username(name)?;
    if !app.store.set_disabled(&user, disabled).await? {
        return Ok(no_account(name));
    }
    println!(
        "{user} is {}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(ExitCode::SUCCESS)
}

/// When the last token key `rotated_at` (epoch seconds) signed stops
/// working by itself: every function has read the rotation
/// ([`KEY_REFRESH`]), and a session issued just before that has expired.
fn sessions_end(app: &App, rotated_at: i64) -> Timestamp {
    let signed_until = rotated_at + KEY_REFRESH.as_secs() as i64;
    Timestamp::from_unix_seconds(signed_until)
        .unwrap_or_else(Timestamp::now)
        .plus(app.config.session_ttl)
}

async fn rotate_key(app: &App) -> Result<ExitCode, ApiError> {
    let now = Timestamp::now();
    Ok(match app.store.rotate_signing_key(now).await? {
        Rotation::Rotated { old, new } => {
            println!(
                "key {new} signs new tokens from now on (every function reads it within {} s)",
                KEY_REFRESH.as_secs()
            );
            println!(
                "key {old} still verifies the tokens it signed: retire it with `chat-ops retire-key {old}` after {} (its last sessions' expiry), once no API key made before then is still live",
                sessions_end(app, now.unix_seconds()).iso8601()
            );
            ExitCode::SUCCESS
        }
        Rotation::NoKey => {
            eprintln!("chat-ops: no signing key yet; the deployment's first login makes one");
            ExitCode::from(1)
        }
        Rotation::NoFreeId => {
            eprintln!("chat-ops: 255 keys are held; retire a previous one first");
            ExitCode::from(1)
        }
    })
}

async fn retire_key(app: &App, id: u8, force: bool) -> Result<ExitCode, ApiError> {
    let Some(ring) = app.store.signing_keys().await? else {
        eprintln!("chat-ops: no signing key yet");
        return Ok(ExitCode::from(2));
    };
    if ring.current().id() == id {
        eprintln!("chat-ops: key {id} is the current key; rotate first");
        return Ok(ExitCode::from(1));
    }
    let Some(previous) = ring.previous().iter().find(|p| p.key.id() == id) else {
        eprintln!("chat-ops: no previous key {id}");
        return Ok(ExitCode::from(2));
    };
    if !force {
        let now = Timestamp::now();
        let until = sessions_end(app, previous.rotated_at);
        if until.unix_seconds() > now.unix_seconds() {
            eprintln!(
                "chat-ops: sessions signed with key {id} may be live until {}; retire it then, or now with --force (they end at once)",
                until.iso8601()
            );
            return Ok(ExitCode::from(1));
        }
        let signed_until =
            Timestamp::from_unix_seconds(previous.rotated_at + KEY_REFRESH.as_secs() as i64)
                .unwrap_or(now);
        let keys = app
            .store
            .live_keys_made_before(signed_until, now.unix_seconds())
            .await?;
        if !keys.is_empty() {
            eprintln!(
                "chat-ops: {} live API keys may be signed with key {id}; retiring it ends them (--force), or wait until they expire or are revoked:",
                keys.len()
            );
            for (user, key) in keys.iter().take(20) {
                let expires = key
                    .expires_at
                    .and_then(Timestamp::from_unix_seconds)
                    .map_or("never".to_owned(), Timestamp::iso8601);
                eprintln!("  {user}  {}  {}  expires {expires}", key.id, key.name);
            }
            return Ok(ExitCode::from(1));
        }
    }
    if !app.store.retire_signing_key(id).await? {
        eprintln!("chat-ops: no previous key {id}");
        return Ok(ExitCode::from(2));
    }
    println!(
        "key {id} is retired: the tokens it signed stop working (in every function within {} s)",
        KEY_REFRESH.as_secs()
    );
    Ok(ExitCode::SUCCESS)
}

/// Every users item brought up to the account item and the ledger, with a
/// line for each left as it is and a summary; progress on stderr when it is
/// a terminal.
async fn migrate(app: &App) -> Result<ExitCode, ApiError> {
    let progress = std::io::stderr().is_terminal();
    let (mut seen, mut moved, mut opened, mut skipped) = (0usize, 0usize, 0usize, 0usize);
    let mut start = None;
    loop {
        let (items, next) = app.store.users_page(start).await?;
        for item in &items {
            seen += 1;
            match app.store.migrate(item, Deadline::none()).await? {
                Migrated::Current => {}
                Migrated::Done {
                    moved_hash,
                    opened_ledger,
                } => {
                    moved += usize::from(moved_hash);
                    opened += usize::from(opened_ledger);
                }
                Migrated::Skipped(why) => {
                    skipped += 1;
                    let name = item
                        .get(USERNAME)
                        .and_then(|v| v.as_s().ok())
                        .map_or("?", String::as_str);
                    println!("{name}: left as it is: {why}");
                }
            }
            if progress {
                eprint!("\rread {seen} users");
            }
        }
        start = next;
        if start.is_none() {
            break;
        }
    }
    if progress {
        eprintln!();
    }
    println!(
        "migrated {seen} users: {moved} password hashes moved to the credentials table, {opened} opening ledger entries, {skipped} left as they were"
    );
    Ok(if skipped == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One line per account that does not balance (or per user asked for),
/// a summary at the end; progress on stderr when it is a terminal.
async fn audit(app: &App, user: Option<String>) -> Result<ExitCode, ApiError> {
    if let Some(name) = user {
        let username = username(&name)?;
        let Some(audit) = app.store.audit(&username).await? else {
            eprintln!("chat-ops: no account {name:?}");
            return Ok(ExitCode::from(2));
        };
        println!("{}", line(&audit));
        return Ok(if audit.balances() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let progress = std::io::stderr().is_terminal();
    let (mut checked, mut differing) = (0usize, 0usize);
    let mut start = None;
    loop {
        let (names, next) = app.store.accounts_page(start).await?;
        for username in names {
            // An account deleted since the scan saw it has nothing to audit.
            let Some(audit) = app.store.audit(&username).await? else {
                continue;
            };
            checked += 1;
            if !audit.balances() {
                differing += 1;
                println!("{}", line(&audit));
            }
            if progress {
                eprint!("\rchecked {checked} accounts, {differing} differ");
            }
        }
        start = next;
        if start.is_none() {
            break;
        }
    }
    if progress {
        eprintln!();
    }
    println!("audited {checked} accounts: {differing} differ");
    Ok(if differing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The window `--from`/`--to` name: `None` (said why) if either is not a
/// UTC day or date-time, or `from` is not before `to`.
fn window(from: Option<String>, to: Option<String>) -> Option<(Timestamp, Timestamp)> {
    let parse = |raw: &str| {
        let at = Timestamp::parse_utc(raw);
        if at.is_none() {
            eprintln!("chat-ops: {raw:?} is not a UTC day (2026-12-02) or date-time (2026-12-02T14:55:00Z)");
        }
        at
    };
    let to = match to {
        Some(raw) => parse(&raw)?,
        None => Timestamp::now().plus(std::time::Duration::from_millis(1)),
    };
    let from = match from {
        Some(raw) => parse(&raw)?,
        None => Timestamp::from_unix_millis(to.unix_millis() - USAGE_DAYS * 86_400_000)?,
    };
    if from.unix_millis() >= to.unix_millis() {
        eprintln!("chat-ops: --from must be before --to");
        return None;
    }
    Some((from, to))
}

/// The default window of `usage`, in days before `--to`.
const USAGE_DAYS: i64 = 30;

async fn usage(
    app: &App,
    user: Option<String>,
    (from, to): (Option<String>, Option<String>),
    by: &str,
    csv: bool,
) -> Result<ExitCode, ApiError> {
    let Some(group) = UsageGroup::parse(by) else {
        eprintln!("chat-ops: --by must be day, model or key");
        return Ok(ExitCode::from(2));
    };
    let Some((from, to)) = window(from, to) else {
        return Ok(ExitCode::from(2));
    };
    if csv {
        println!("user,group,charged,granted,net,entries");
    }
    let mut total = UsageRow::default();
    let mut print = |username: &Username, usage: &Usage| {
        for row in &usage.rows {
            let group = row.group.as_deref().unwrap_or("-");
            if csv {
                println!(
                    "{username},{group},{},{},{},{}",
                    row.charged,
                    row.granted,
                    row.net(),
                    row.entries
                );
            } else {
                println!(
                    "{username}  {group}  charged {}  granted {}  net {}  entries {}",
                    row.charged,
                    row.granted,
                    row.net(),
                    row.entries
                );
            }
        }
        total.charged += usage.total.charged;
        total.granted += usage.total.granted;
        total.entries += usage.total.entries;
    };
    match user {
        Some(name) => {
            let username = username(&name)?;
            if app.store.account_view(&username, 0).await?.is_none() {
                return Ok(no_account(&name));
            }
            let usage = app.store.usage_of(&username, from, to, group).await?;
            print(&username, &usage);
        }
        None => {
            let mut start = None;
            loop {
                let (names, next) = app.store.accounts_page(start).await?;
                for username in names {
                    let usage = app.store.usage_of(&username, from, to, group).await?;
                    print(&username, &usage);
                }
                start = next;
                if start.is_none() {
                    break;
                }
            }
        }
    }
    // On stderr with CSV, so the file holds the rows alone.
    let summary = format!(
        "total {} to {}: charged {}, granted {}, net {}, {} entries",
        from.iso8601(),
        to.iso8601(),
        total.charged,
        total.granted,
        total.net(),
        total.entries
    );
    if csv {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

fn line(audit: &Audit) -> String {
    let verdict = if audit.balances() {
        "ok".to_owned()
    } else {
        format!("DIFFERS by {}", audit.balance - audit.ledger_sum)
    };
    format!(
        "{}: balance {}, ledger {} ({} entries, {} open holds): {verdict}",
        audit.username, audit.balance, audit.ledger_sum, audit.entries, audit.open_holds
    )
}
