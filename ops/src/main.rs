//! `chat-ops`: what an operator runs against the deployed tables, with
//! their own AWS credentials (IAM is the access control; the public API has
//! no admin route). Table names come from the same variables the functions
//! read (`USERS_TABLE`, `CREDENTIALS_TABLE`, `CHATS_TABLE`);
//! `AWS_ENDPOINT_URL` points it at DynamoDB Local.

use std::io::IsTerminal;
use std::process::ExitCode;

use chat_core::clock::Timestamp;
use chat_core::deadline::Deadline;
use chat_core::domain::Username;
use chat_core::store::{Audit, GrantOutcome};
use chat_core::{ApiError, App, Config};
use clap::{Parser, Subcommand};

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
    /// Add tokens to a user's balance (negative: take them back, never
    /// below zero), with a ledger entry. Give the same --op-id to retry:
    /// it applies once.
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
    /// Check that each balance equals the sum of its ledger: one user, or
    /// every account (a paginated scan). Exits 1 if any differs.
    Audit {
        /// The user to check; every account when left out.
        user: Option<String>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chat-ops: {e}");
            return ExitCode::from(2);
        }
    };
    let app = App::new(config, chat_core::app::dynamodb_client().await);
    let result = match cli.command {
        Command::Audit { user } => audit(&app, user).await,
        Command::Grant {
            user,
            tokens,
            reason,
            op_id,
        } => grant(&app, &user, tokens, &reason, op_id).await,
        Command::Show { user } => show(&app, &user).await,
        Command::Revoke { user } => revoke(&app, &user).await,
        Command::Invite { count, note } => invite(&app, count, &note).await,
        Command::Disable { user } => set_disabled(&app, &user, true).await,
        Command::Enable { user } => set_disabled(&app, &user, false).await,
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
        GrantOutcome::IdReused { amount } => {
            eprintln!("chat-ops: operation {op_id} was a grant of {amount}, not {tokens}; nothing changed");
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
