//! The users table's stream on DynamoDB Local, read the way Lambda's event
//! source mapping reads it in AWS: every shard from its start, each record
//! once, in order. `make run`'s `alerts-local` and the tests run the alerts
//! function's own decision ([`chat_core::alerts`]) on what this returns.
//!
//! Plain JSON over HTTP rather than the AWS SDK's streams client: DynamoDB
//! Local 3.x writes an empty map in a stream image as `{}` (no `"M"`),
//! which the SDK refuses as a whole response ("Union did not contain a
//! valid variant"), and the JSON it sends is already the shape Lambda hands
//! a function. Local checks no signature; the credential scope names the
//! same region and key as every other local client.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use chat_core::alerts::StreamRecord;

use crate::tables::BoxError;

/// A reader of one table's stream that remembers how far it has read.
pub struct StreamReader {
    http: Client<HttpConnector, Full<Bytes>>,
    endpoint: String,
    arn: String,
    /// The last sequence number read, per shard.
    read: BTreeMap<String, String>,
}

impl StreamReader {
    /// The stream of `table` at `endpoint` (DynamoDB Local), read from its
    /// start.
    pub async fn open(
        endpoint: &str,
        dynamodb: &aws_sdk_dynamodb::Client,
        table: &str,
    ) -> Result<Self, BoxError> {
        let described = dynamodb.describe_table().table_name(table).send().await?;
        let arn = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| format!("table {table} has no stream"))?
            .to_owned();
        Ok(StreamReader {
            http: Client::builder(TokioExecutor::new()).build_http(),
            endpoint: endpoint.to_owned(),
            arn,
            read: BTreeMap::new(),
        })
    }

    /// Every record written since the last call (since the stream began,
    /// the first time), oldest first. DynamoDB Local makes a write's record
    /// readable before it answers the write, so after a test's writes
    /// return, one call sees them all: no waiting, nothing timed.
    pub async fn read_new(&mut self) -> Result<Vec<StreamRecord>, BoxError> {
        let mut records = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let mut request = json!({"StreamArn": self.arn});
            if let Some(start) = &start {
                request["ExclusiveStartShardId"] = json!(start);
            }
            let described = self.call("DescribeStream", request).await?;
            let description = &described["StreamDescription"];
            let shards: Vec<String> = description["Shards"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["ShardId"].as_str().map(str::to_owned))
                .collect();
            for shard in shards {
                records.extend(self.read_shard(&shard).await?);
            }
            start = description["LastEvaluatedShardId"]
                .as_str()
                .map(str::to_owned);
            if start.is_none() {
                break;
            }
        }
        // Sequence numbers are decimal strings that grow with each write.
        records.sort_by(|a: &StreamRecord, b| {
            (a.sequence.len(), &a.sequence).cmp(&(b.sequence.len(), &b.sequence))
        });
        Ok(records)
    }

    async fn read_shard(&mut self, shard: &str) -> Result<Vec<StreamRecord>, BoxError> {
        let mut request = json!({"StreamArn": self.arn, "ShardId": shard});
        match self.read.get(shard) {
            Some(last) => {
                request["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
                request["SequenceNumber"] = json!(last);
            }
            None => request["ShardIteratorType"] = json!("TRIM_HORIZON"),
        }
        let mut iterator = self.call("GetShardIterator", request).await?["ShardIterator"].take();
        let mut records = Vec::new();
        while let Some(at) = iterator.as_str() {
            let mut output = self
                .call("GetRecords", json!({"ShardIterator": at}))
                .await?;
            let batch = output["Records"].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for mut record in batch {
                let record: StreamRecord = serde_json::from_value(record["dynamodb"].take())?;
                self.read.insert(shard.to_owned(), record.sequence.clone());
                records.push(record);
            }
            iterator = output["NextShardIterator"].take();
        }
        Ok(records)
    }

    /// One call of the DynamoDB Streams API.
    async fn call(&self, operation: &str, body: Value) -> Result<Value, BoxError> {
        let request = Request::post(&self.endpoint)
            .header("content-type", "application/x-amz-json-1.0")
            .header(
                "x-amz-target",
                format!("DynamoDBStreams_20120810.{operation}"),
            )
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .body(Full::new(Bytes::from(body.to_string())))?;
        let response = self.http.request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            return Err(
                format!("{operation}: {status}: {}", String::from_utf8_lossy(&bytes)).into(),
            );
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}
