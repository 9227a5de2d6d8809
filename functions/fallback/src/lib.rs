//! Every request no route matches: a JSON 405 (with `Allow`) for a known path
//! called with the wrong method, a JSON 404 for anything else. It touches no
//! table and needs no configuration.

use chat_core::http::respond;
use chat_core::openai::OpenAiError;
use chat_core::routes::{is_openai, method_for, route_for};
use chat_core::ApiError;
use lambda_http::{Body, Error, Request, Response};

pub async fn handle(request: Request) -> Result<Response<Body>, Error> {
    let refusal = refusal(&request);
    if is_openai(request.uri().path()) {
        // OpenAI's clients parse only OpenAI's error shape.
        return Ok(OpenAiError::of(&refusal).into_response());
    }
    respond(Err(refusal))
}

fn refusal(request: &Request) -> ApiError {
    let path = request.uri().path();
    match method_for(path) {
        // A method the path is served on never reaches here in AWS (its
        // route takes it); directly invoked, it is still not ours to serve.
        Some(allowed) if route_for(request.method().as_str(), path).is_none() => {
            ApiError::MethodNotAllowed { allowed }
        }
        _ => ApiError::NotFound,
    }
}
