//! The console's stylesheet and script, embedded in the binary (no CDN, nothing fetched at run time) and
//! served under names that carry a hash of their content, so that browsers may keep them for a year and
//! still see a new version at once.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// `(name, content type, content)` of each asset.
const ASSETS: [(&str, &str, &str); 2] = [
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
];

/// Each asset's served name: `console.css` becomes `console.<first 12 hex digits of its SHA-256>.css`.
static SERVED: LazyLock<Vec<(String, &'static str, &'static str)>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|(name, content_type, content)| {
            let hash = Sha256::digest(content.as_bytes());
            let hex: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
            let (stem, extension) = name.rsplit_once('.').unwrap_or((name, ""));
            (format!("{stem}.{hex}.{extension}"), *content_type, *content)
        })
        .collect()
});

/// The console path of asset `name` (e.g. `console.css`), hash included.
pub fn url(name: &str) -> String {
    let index = ASSETS.iter().position(|(n, _, _)| *n == name).unwrap_or(0);
    format!("/assets/{}", SERVED[index].0)
}

/// `GET /assets/{name}`: the asset, cacheable for a year; 404 for any other name.
pub async fn serve(Path(name): Path<String>) -> Response {
    match SERVED.iter().find(|(served, _, _)| *served == name) {
        Some((_, content_type, content)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            *content,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_names_carry_the_content_hash() {
        let css = url("console.css");
        assert!(
            css.starts_with("/assets/console.") && css.ends_with(".css"),
            "{css}"
        );
        assert_eq!(css.len(), "/assets/console..css".len() + 12);
        assert_ne!(url("console.js"), css);
    }
}
