//! `getCredentials`: one page of an earner's collection. Holdings sit at dense positions 1..N, so
//! the page at `offset` is the index range `position > base + offset` of `(user_id, position)`
//! (the primary key) whatever the depth, and the total is one stored number. `since` keeps the
//! credentials added to the collection after that time; additions are appended, so they are a
//! suffix of the positions, found through `(user_id, added_at)`.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use super::{ownership, statement};

/// Largest page (`limit`).
pub const MAX_LIMIT: u64 = 1000;
/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u64 = 100;

/// A page request, already checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u64,
    pub offset: u64,
    pub since: Option<DateTime<Utc>>,
}

/// One held credential, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldCredential {
    /// JSON text of an embedded-proof credential, exactly as stored.
    Json(String),
    /// A compact JWS.
    Jwt(String),
}

/// A page and the size of the whole (filtered) collection.
#[derive(Debug, Clone)]
pub struct Page {
    pub total: u64,
    pub items: Vec<HeldCredential>,
}

fn classify(format: &str, document: String) -> HeldCredential {
    if format == "jwt" {
        HeldCredential::Jwt(document)
    } else {
        HeldCredential::Json(document)
    }
}

/// The user's collection after bringing it up to date, one page of it.
pub async fn credentials_page(
    db: &DatabaseConnection,
    user_id: &str,
    request: PageRequest,
) -> Result<Page, DbErr> {
    let total = ownership::collect(db, user_id).await?;
    read_page(db, user_id, total, request).await
}

/// One page of the collection as it is (no collection step); `total` is the holder's size.
pub async fn read_page(
    db: &impl ConnectionTrait,
    user_id: &str,
    total: i64,
    request: PageRequest,
) -> Result<Page, DbErr> {
    let backend = db.get_database_backend();
    let base: i64 = match request.since {
        None => 0,
        Some(since) => db
            .query_one_raw(statement(
                backend,
                "SELECT MAX(position) AS base FROM ob3_holdings WHERE user_id = ? AND added_at <= ?",
                vec![user_id.into(), since.into()],
            ))
            .await?
            .and_then(|row| row.try_get::<Option<i64>>("", "base").ok().flatten())
            .unwrap_or(0),
    };
    let offset = i64::try_from(request.offset).unwrap_or(i64::MAX / 2);
    let limit = i64::try_from(request.limit).unwrap_or(100);
    let rows = db
        .query_all_raw(statement(
            backend,
            "SELECT c.format AS c_format, c.document AS c_document, u.format AS u_format, u.body AS u_body \
             FROM ob3_holdings h \
             LEFT JOIN credentials c ON c.id = h.credential_id \
             LEFT JOIN ob3_uploads u ON u.id = h.upload_id \
             WHERE h.user_id = ? AND h.position > ? ORDER BY h.position LIMIT ?",
            vec![user_id.into(), (base.saturating_add(offset)).into(), limit.into()],
        ))
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let credential: Option<(String, String)> = row
            .try_get::<Option<String>>("", "c_format")?
            .zip(row.try_get::<Option<String>>("", "c_document")?);
        let upload: Option<(String, String)> = row
            .try_get::<Option<String>>("", "u_format")?
            .zip(row.try_get::<Option<String>>("", "u_body")?);
        if let Some((format, document)) = credential.or(upload) {
            items.push(classify(&format, document));
        }
    }
    Ok(Page {
        total: u64::try_from((total - base).max(0)).unwrap_or(0),
        items,
    })
}

/// The `Link` header of a page: `first` and `last` always, `next` when more follow, `prev` when
/// `offset > 0`. `base` is the collection URL with any other query parameters (`since`) already
/// on it.
pub fn link_header(base: &url::Url, request: PageRequest, total: u64) -> String {
    let url = |offset: u64| {
        let mut u = base.clone();
        u.query_pairs_mut()
            .append_pair("limit", &request.limit.to_string())
            .append_pair("offset", &offset.to_string());
        u.to_string()
    };
    let limit = request.limit.max(1);
    let last = if total == 0 {
        0
    } else {
        (total - 1) / limit * limit
    };
    let mut links = vec![format!("<{}>; rel=\"first\"", url(0))];
    if request.offset.saturating_add(request.limit) < total {
        links.push(format!(
            "<{}>; rel=\"next\"",
            url(request.offset + request.limit)
        ));
    }
    if request.offset > 0 {
        links.push(format!(
            "<{}>; rel=\"prev\"",
            url(request.offset.saturating_sub(request.limit))
        ));
    }
    links.push(format!("<{}>; rel=\"last\"", url(last)));
    links.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_first_last_and_neighbours() {
        let base = url::Url::parse("https://h.example/ims/ob/v3p0/credentials").unwrap();
        let req = |offset| PageRequest {
            limit: 10,
            offset,
            since: None,
        };
        let first = link_header(&base, req(0), 25);
        assert!(first.contains("offset=0>; rel=\"first\""));
        assert!(first.contains("offset=10>; rel=\"next\""));
        assert!(first.contains("offset=20>; rel=\"last\""));
        assert!(!first.contains("prev"));
        let last = link_header(&base, req(20), 25);
        assert!(!last.contains("next"));
        assert!(last.contains("offset=10>; rel=\"prev\""));
        let empty = link_header(&base, req(0), 0);
        assert!(empty.contains("rel=\"last\"") && !empty.contains("next"));
    }
}
