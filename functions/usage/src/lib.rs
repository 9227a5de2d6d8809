//! `GET /usage/`: where the caller's tokens went in a time window, grouped
//! by day, model or API key, from the ledger (exact: the groups' `net`
//! adds up to the ledger's movements in the window). JSON for programs;
//! CSV for people with `Accept: text/csv`. Free, like every read.

use chat_core::clock::Timestamp;
use chat_core::http::require_method;
use chat_core::response::json_response;
use chat_core::store::{Usage, UsageGroup, UsageRow};
use chat_core::{ApiError, App};
use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde_json::{json, Value};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// The window when `from` is not given: the 30 days before `to`.
const DEFAULT_DAYS: i64 = 30;
/// The header that carries the next page's cursor in a CSV answer.
pub const NEXT_CURSOR: &str = "next-cursor";
/// The cursor of the group of entries that name no model or key.
const NULL_GROUP: &str = "-";

pub async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
    let started = std::time::Instant::now();
    app.answer("usage", started, usage(app, request).await)
}

/// What the query asks for, checked.
struct Query {
    from: Timestamp,
    to: Timestamp,
    group: UsageGroup,
    limit: usize,
    /// Rows come after this group.
    after: Option<Option<String>>,
}

async fn usage(app: &App, request: Request) -> Result<Response<Body>, ApiError> {
    require_method(&request, Method::GET)?;
    let token = app.auth.authenticate(&request).await?;
    let query = query_of(&request)?;
    let usage = app
        .store
        .usage(&token, query.from, query.to, query.group)
        .await?;
    let (rows, next) = page(&usage, &query);
    if wants_csv(&request) {
        return Ok(csv_response(rows, next));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "from": query.from.iso8601(),
            "to": query.to.iso8601(),
            "group_by": query.group.as_str(),
            "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
            "total": row_json(&usage.total),
            "next_cursor": next,
        }),
    ))
}

fn query_of(request: &Request) -> Result<Query, ApiError> {
    let params = request.query_string_parameters();
    let one = |name: &'static str| single(params.all(name), name);
    let instant = |name: &'static str| {
        one(name)?
            .map(|raw| {
                Timestamp::parse_utc(raw).ok_or_else(|| {
                    ApiError::invalid_field(
                        name,
                        "must be a UTC day (2026-12-02) or date-time (2026-12-02T14:55:00Z)",
                    )
                })
            })
            .transpose()
    };
    // `to` is exclusive: by default, everything up to now.
    let to = instant("to")?
        .unwrap_or_else(|| Timestamp::now().plus(std::time::Duration::from_millis(1)));
    let from = match instant("from")? {
        Some(from) => from,
        None => Timestamp::from_unix_millis(to.unix_millis() - DEFAULT_DAYS * 86_400_000)
            .ok_or_else(|| ApiError::invalid_field("to", "is too early"))?,
    };
    if from.unix_millis() >= to.unix_millis() {
        return Err(ApiError::invalid_field("from", "must be before `to`"));
    }
    let group = match one("group_by")? {
        None => UsageGroup::Day,
        Some(raw) => UsageGroup::parse(raw).ok_or_else(|| {
            ApiError::invalid_field("group_by", "must be `day`, `model` or `key`")
        })?,
    };
    let limit = match one("limit")? {
        None => DEFAULT_LIMIT,
        Some(raw) => Some(raw)
            .filter(|raw| raw.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|raw| raw.parse::<usize>().ok())
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let after = match one("cursor")? {
        None => None,
        Some("") => {
            return Err(ApiError::invalid_field(
                "cursor",
                "must be a page's next_cursor",
            ))
        }
        Some(NULL_GROUP) => Some(None),
        Some(group) => Some(Some(group.to_owned())),
    };
    Ok(Query {
        from,
        to,
        group,
        limit,
        after,
    })
}

/// A parameter given once at most: two would be ambiguous.
fn single<'a>(
    values: Option<Vec<&'a str>>,
    name: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    match values.as_deref() {
        None | Some([]) => Ok(None),
        Some([one]) => Ok(Some(one)),
        Some(_) => Err(ApiError::invalid_field(name, "must be given once")),
    }
}

/// The rows of this page, and the cursor of the next if there is one. A
/// cursor is the last group shown: groups are sorted, so a page after it
/// neither repeats nor skips one, whatever was spent meanwhile.
fn page<'a>(usage: &'a Usage, query: &Query) -> (&'a [UsageRow], Option<String>) {
    let start = match &query.after {
        None => 0,
        Some(after) => usage.rows.partition_point(|row| row.group <= *after),
    };
    let rows = &usage.rows[start..];
    let shown = &rows[..rows.len().min(query.limit)];
    let next = (rows.len() > shown.len())
        .then(|| shown.last().map(cursor_of))
        .flatten();
    (shown, next)
}

fn cursor_of(row: &UsageRow) -> String {
    row.group.clone().unwrap_or_else(|| NULL_GROUP.to_owned())
}

fn row_json(row: &UsageRow) -> Value {
    json!({
        "group": row.group,
        "charged": row.charged,
        "granted": row.granted,
        "net": row.net(),
        "entries": row.entries,
    })
}

/// Whether the client asked for CSV (`Accept: text/csv`, alone or first
/// among others).
fn wants_csv(request: &Request) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| {
            accept.split(',').any(|kind| {
                kind.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("text/csv")
            })
        })
}

fn csv_response(rows: &[UsageRow], next: Option<String>) -> Response<Body> {
    let mut csv = String::from("group,charged,granted,net,entries\r\n");
    for row in rows {
        csv.push_str(&format!(
            "{},{},{},{},{}\r\n",
            csv_field(row.group.as_deref().unwrap_or("")),
            row.charged,
            row.granted,
            row.net(),
            row.entries
        ));
    }
    let mut response = Response::new(Body::Text(csv));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Some(value) = next.and_then(|next| HeaderValue::from_str(&next).ok()) {
        headers.insert(NEXT_CURSOR, value);
    }
    response
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break; and a
/// leading `=`, `+`, `-` or `@` is quoted after a `'`, so a spreadsheet
/// never runs a group name as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\r', '\n']) || value.starts_with('\'') {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(groups: &[Option<&str>]) -> Usage {
        Usage {
            rows: groups
                .iter()
                .map(|g| UsageRow {
                    group: g.map(str::to_owned),
                    ..UsageRow::default()
                })
                .collect(),
            total: UsageRow::default(),
        }
    }

    fn query(limit: usize, after: Option<Option<&str>>) -> Query {
        Query {
            from: Timestamp::now(),
            to: Timestamp::now(),
            group: UsageGroup::Model,
            limit,
            after: after.map(|a| a.map(str::to_owned)),
        }
    }

    #[test]
    fn pages_follow_the_last_group_shown_and_end_without_a_cursor() {
        let usage = rows(&[None, Some("a"), Some("b")]);
        let (first, next) = page(&usage, &query(2, None));
        assert_eq!(first.len(), 2);
        assert_eq!(next.as_deref(), Some("a"));
        let (second, next) = page(&usage, &query(2, Some(Some("a"))));
        assert_eq!(second[0].group.as_deref(), Some("b"));
        assert_eq!(next, None);
        let (after_null, _) = page(&usage, &query(5, Some(None)));
        assert_eq!(after_null.len(), 2);
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("haiku"), "haiku");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=1+1"), "\"'=1+1\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
