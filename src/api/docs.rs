//! The documentation pages: `/openapi.json`, Swagger UI at `/docs` and ReDoc at `/redoc`,
//! laid out as FastAPI serves them, with every asset vendored (no network at build or run).
//!
//! Swagger UI is served at `/docs` itself, not `/docs/`: the security scheme's relative
//! `tokenUrl: "token"` resolves against the page's URL, so only `/docs` posts to `/token`.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::Path;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use utoipa::OpenApi;

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::fallback::method_not_allowed;
use crate::api::openapi::ApiDoc;

static SWAGGER_HTML: LazyLock<String> =
    LazyLock::new(|| include_str!("docs/swagger.html").replace("{title}", &ApiDoc::openapi().info.title));

static REDOC_HTML: LazyLock<String> =
    LazyLock::new(|| include_str!("docs/redoc.html").replace("{title}", &ApiDoc::openapi().info.title));

const REDOC_JS: &[u8] = include_bytes!("../../assets/redoc/redoc.standalone.js");

/// Routes for the OpenAPI document (rendered once, for the configuration: `openapi::document`)
/// and the two documentation UIs.
pub fn router(openapi_json: Bytes) -> Router<AppState> {
    // Documentation pages answer HEAD too, as FastAPI's do.
    let page = |route: MethodRouter<AppState>| route.fallback(method_not_allowed("GET, HEAD"));
    let openapi_json = move || {
        let body = openapi_json.clone();
        async move { ([(CONTENT_TYPE, "application/json")], body).into_response() }
    };
    Router::new()
        .route("/openapi.json", page(get(openapi_json)))
        .route("/docs", page(get(|| async { Html(SWAGGER_HTML.as_str()) })))
        .route("/docs/oauth2-redirect", page(get(|| swagger_file("oauth2-redirect.html"))))
        .route("/docs/{file}", page(get(|Path(file): Path<String>| swagger_file_owned(file))))
        .route("/redoc", page(get(|| async { Html(REDOC_HTML.as_str()) })))
        .route(
            "/redoc/redoc.standalone.js",
            page(get(|| async { ([(CONTENT_TYPE, "text/javascript")], REDOC_JS) })),
        )
}

async fn swagger_file_owned(file: String) -> Response {
    swagger_file(&file).await
}

/// A file of the Swagger UI distribution vendored in `utoipa-swagger-ui`.
async fn swagger_file(file: &str) -> Response {
    // The index and its initializer are replaced by our own `/docs` page.
    if matches!(file, "" | "index.html" | "swagger-initializer.js") {
        return ApiError::NotFound.into_response();
    }
    let config = Arc::new(utoipa_swagger_ui::Config::from("/openapi.json"));
    match utoipa_swagger_ui::serve(file, config) {
        Ok(Some(found)) => {
            // FastAPI answers its HTML pages (`/docs/oauth2-redirect`) with the charset.
            let content_type = match found.content_type.as_str() {
                "text/html" => "text/html; charset=utf-8".to_owned(),
                _ => found.content_type,
            };
            let mut response = ([(CONTENT_TYPE, content_type)], found.bytes.into_owned()).into_response();
            if found.gzpipped {
                response.headers_mut().insert(CONTENT_ENCODING, "gzip".parse().expect("valid header"));
            }
            response
        }
        _ => ApiError::NotFound.into_response(),
    }
}
