//! Creates the tables named by `USERS_TABLE`, `CREDENTIALS_TABLE` and
//! `CHATS_TABLE` in the DynamoDB at `AWS_ENDPOINT_URL`, if they are missing.
//! `make run` calls it before it serves the API.

use chat_core::config::Config;
use devtools::dynamodb_local::client_for;
use devtools::tables::create_missing_tables;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let config = Config::from_env()?;
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .map_err(|_| "AWS_ENDPOINT_URL must point at DynamoDB Local")?;
    let created = create_missing_tables(&client_for(&endpoint), &config.tables).await?;
    if created.is_empty() {
        println!(
            "tables ready (already there): {}, {}, {}",
            config.tables.users, config.tables.credentials, config.tables.chats
        );
    } else {
        println!("created tables: {}", created.join(", "));
    }
    Ok(())
}
