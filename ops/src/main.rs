//! `chat-ops`: what an operator runs against the deployed tables, with
//! their own AWS credentials (IAM is the access control; the public API has
//! no admin route). Table names come from the same variables the functions
//! read (`USERS_TABLE`, `CREDENTIALS_TABLE`, `CHATS_TABLE`);
//! `AWS_ENDPOINT_URL` points it at DynamoDB Local.

use std::io::IsTerminal;
use std::process::ExitCode;

use chat_core::domain::Username;
use chat_core::store::Audit;
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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chat-ops: {e}");
            ExitCode::from(2)
        }
    }
}

/// One line per account that does not balance (or per user asked for),
/// a summary at the end; progress on stderr when it is a terminal.
async fn audit(app: &App, user: Option<String>) -> Result<ExitCode, ApiError> {
    if let Some(name) = user {
        let username =
            Username::parse_existing(&name).map_err(|e| ApiError::invalid_field("user", e))?;
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
