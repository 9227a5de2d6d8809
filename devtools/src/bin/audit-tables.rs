//! The ledger check over everything a test run left behind: every set of
//! tables in the DynamoDB Local at `AWS_ENDPOINT_URL` (a prefix with its
//! `users`, `credentials` and `chats`), every account in each, its balance
//! against the sum of its ledger. `make test` runs it after the tests, so a
//! test that moves tokens wrongly fails the run even if it forgot its own
//! check. Exits 1 if any account differs.

use std::collections::BTreeSet;
use std::process::ExitCode;

use chat_core::config::{Config, Tables};
use devtools::dynamodb_local::{client_for, quiet_app};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
        eprintln!("audit-tables: AWS_ENDPOINT_URL must point at DynamoDB Local");
        return ExitCode::from(2);
    };
    let client = client_for(&endpoint);
    let mut names = BTreeSet::new();
    let mut start = None;
    loop {
        let page = match client
            .list_tables()
            .set_exclusive_start_table_name(start)
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) => {
                eprintln!("audit-tables: listing tables: {e:?}");
                return ExitCode::from(2);
            }
        };
        names.extend(page.table_names().iter().cloned());
        start = page.last_evaluated_table_name().map(str::to_owned);
        if start.is_none() {
            break;
        }
    }
    let sets: Vec<Tables> = names
        .iter()
        .filter_map(|name| name.strip_suffix("users"))
        .map(Tables::with_prefix)
        .filter(|t| names.contains(&t.credentials) && names.contains(&t.chats))
        .collect();
    let (mut accounts, mut differing) = (0usize, 0usize);
    for tables in &sets {
        let app = quiet_app(Config::with_tables(tables.clone()), client.clone());
        let mut start = None;
        loop {
            let (page, next) = match app.store.accounts_page(start).await {
                Ok(page) => page,
                Err(e) => {
                    eprintln!("audit-tables: {}: {e}", tables.users);
                    return ExitCode::from(2);
                }
            };
            for user in page {
                match app.store.audit(&user).await {
                    Ok(Some(audit)) => {
                        accounts += 1;
                        if !audit.balances() {
                            differing += 1;
                            println!(
                                "{}: {user}: balance {}, ledger {} ({} entries)",
                                tables.users, audit.balance, audit.ledger_sum, audit.entries
                            );
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("audit-tables: {}: {user}: {e}", tables.users);
                        return ExitCode::from(2);
                    }
                }
            }
            start = next;
            if start.is_none() {
                break;
            }
        }
    }
    println!(
        "audited {accounts} accounts in {} sets of tables: {differing} differ",
        sets.len()
    );
    if differing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
