//! Every request no route matches: a JSON 405 (with `Allow`) for a known path
//! called with the wrong method, a JSON 404 for anything else. It touches no
//! table and needs no configuration.

use chat_core::http::respond;
use chat_core::routes::method_for;
use chat_core::ApiError;
use lambda_http::{Body, Error, Request, Response};

pub async fn handle(request: Request) -> Result<Response<Body>, Error> {
    respond(Err(refusal(&request)))
}

fn refusal(request: &Request) -> ApiError {
    match method_for(request.uri().path()) {
        Some(allowed) if request.method().as_str() != allowed => {
            ApiError::MethodNotAllowed { allowed }
        }
        _ => ApiError::NotFound,
    }
}
