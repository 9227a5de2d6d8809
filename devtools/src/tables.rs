//! Key schemas of the three tables, the single source for creating them
//! locally. A test holds these against `template.yaml`, so the tables
//! `make run` and the tests create are the ones AWS gets.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use chat_core::config::Tables;
use chat_core::store::{CHAT_ID, USERNAME};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Users,
    Credentials,
    Chats,
}

#[derive(Clone, Copy, Debug)]
pub struct TableSpec {
    pub table: Table,
    /// Logical id of the table in `template.yaml`.
    pub logical_id: &'static str,
    /// Partition key, a string attribute.
    pub hash_key: &'static str,
    /// Sort key, a string attribute, if any.
    pub range_key: Option<&'static str>,
    /// The epoch-seconds attribute DynamoDB's TTL deletes by.
    pub ttl_attribute: Option<&'static str>,
    pub indexes: &'static [IndexSpec],
    /// The stream's view type (`NEW_AND_OLD_IMAGES`), if the table has one.
    pub stream: Option<&'static str>,
}

/// A global secondary index: a string partition key, a number sort key,
/// and the attributes it carries besides the keys.
#[derive(Clone, Copy, Debug)]
pub struct IndexSpec {
    pub name: &'static str,
    pub hash_key: &'static str,
    pub range_key: &'static str,
    pub projected: &'static [&'static str],
}

/// Open holds by deadline, for the sweeper: sparse, since a hold leaves it
/// (loses `open_shard`) when it is settled or released.
pub const OPEN_HOLDS: IndexSpec = IndexSpec {
    name: chat_core::store::OPEN_HOLDS_INDEX,
    hash_key: "open_shard",
    range_key: "deadline",
    projected: &["amount", "marker_id"],
};

pub const TABLES: [TableSpec; 3] = [
    TableSpec {
        table: Table::Users,
        logical_id: "UsersTable",
        hash_key: USERNAME,
        range_key: None,
        ttl_attribute: None,
        indexes: &[],
        // Every write of an account, before and after, for the alerts
        // (functions/alerts; locally the `alerts-local` poller).
        stream: Some("NEW_AND_OLD_IMAGES"),
    },
    TableSpec {
        table: Table::Credentials,
        logical_id: "CredentialsTable",
        hash_key: USERNAME,
        range_key: None,
        // Failed logins per name and the per-source counts expire
        // (store/failures.rs, store/sources.rs); credentials and invite
        // codes never carry the attribute.
        ttl_attribute: Some("ttl"),
        indexes: &[],
        stream: None,
    },
    TableSpec {
        table: Table::Chats,
        logical_id: "ChatsTable",
        hash_key: USERNAME,
        range_key: Some(CHAT_ID),
        // The per-minute chat counts (store/rate.rs) expire; no other item
        // of the table carries the attribute.
        ttl_attribute: Some("ttl"),
        indexes: &[OPEN_HOLDS],
        stream: None,
    },
];

impl TableSpec {
    pub fn name_in<'a>(&self, tables: &'a Tables) -> &'a str {
        match self.table {
            Table::Users => &tables.users,
            Table::Credentials => &tables.credentials,
            Table::Chats => &tables.chats,
        }
    }
}

pub type BoxError = chat_core::error::BoxError;

/// Creates whichever of the tables is missing (on-demand, as in AWS) and
/// turns on TTL and streams where the template does. Existing tables are
/// left as they are, but for a stream the template has and they lack (a
/// `make run` data folder from before alerts), which is turned on.
pub async fn create_missing_tables(
    client: &Client,
    tables: &Tables,
) -> Result<Vec<String>, BoxError> {
    let mut created = Vec::new();
    for spec in TABLES {
        let name = spec.name_in(tables);
        let keys = std::iter::once((spec.hash_key, KeyType::Hash))
            .chain(spec.range_key.map(|k| (k, KeyType::Range)));
        let mut request = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest);
        for (attribute, key_type) in keys {
            request = request
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(attribute)
                        .attribute_type(ScalarAttributeType::S)
                        .build()?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(attribute)
                        .key_type(key_type)
                        .build()?,
                );
        }
        for index in spec.indexes {
            request = request
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(index.hash_key)
                        .attribute_type(ScalarAttributeType::S)
                        .build()?,
                )
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(index.range_key)
                        .attribute_type(ScalarAttributeType::N)
                        .build()?,
                )
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(index.name)
                        .key_schema(
                            KeySchemaElement::builder()
                                .attribute_name(index.hash_key)
                                .key_type(KeyType::Hash)
                                .build()?,
                        )
                        .key_schema(
                            KeySchemaElement::builder()
                                .attribute_name(index.range_key)
                                .key_type(KeyType::Range)
                                .build()?,
                        )
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::Include)
                                .set_non_key_attributes(Some(
                                    index.projected.iter().map(|a| a.to_string()).collect(),
                                ))
                                .build(),
                        )
                        .build()?,
                );
        }
        if let Some(view) = spec.stream {
            request = request.stream_specification(stream_of(view)?);
        }
        match request.send().await {
            Ok(_) => created.push(name.to_owned()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                if let Some(view) = spec.stream {
                    turn_on_stream(client, name, view).await?;
                }
                continue;
            }
            Err(err) => return Err(Box::new(err)),
        }
        if let Some(attribute) = spec.ttl_attribute {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(attribute)
                        .enabled(true)
                        .build()?,
                )
                .send()
                .await?;
        }
    }
    Ok(created)
}

fn stream_of(view: &str) -> Result<StreamSpecification, BoxError> {
    Ok(StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::from(view))
        .build()?)
}

/// Turns on `name`'s stream if it has none.
async fn turn_on_stream(client: &Client, name: &str, view: &str) -> Result<(), BoxError> {
    let table = client.describe_table().table_name(name).send().await?;
    let enabled = table
        .table()
        .and_then(|t| t.stream_specification())
        .is_some_and(|s| s.stream_enabled());
    if !enabled {
        client
            .update_table()
            .table_name(name)
            .stream_specification(stream_of(view)?)
            .send()
            .await?;
    }
    Ok(())
}
