//! The OB 3.0 REST API's domain (provider side): which credentials an earner owns (issued here to
//! their verified email or a DID they linked, plus what they uploaded), the paged collection the
//! API serves, uploads under the OB 3.0 equality rule, Profiles, DID linking, and the Service
//! Description Document. The HTTP edge is `http::ob3`.

pub mod consumer;
pub mod did_link;
pub mod discovery;
pub mod ownership;
pub mod profile;
pub mod provider;
pub mod uploads;

use sea_orm::{DbBackend, Statement, Value as DbValue};

/// A statement for `backend` from SQL written with `?` placeholders (PostgreSQL gets `$1…`). The
/// SQL must not contain `?` anywhere else.
pub(crate) fn statement(backend: DbBackend, sql: &str, values: Vec<DbValue>) -> Statement {
    let text = if backend == DbBackend::Postgres {
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for ch in sql.chars() {
            if ch == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(ch);
            }
        }
        out
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, text, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        let s = statement(
            DbBackend::Postgres,
            "a = ? AND b = ?",
            vec![1.into(), 2.into()],
        );
        assert_eq!(s.sql, "a = $1 AND b = $2");
        let s = statement(DbBackend::Sqlite, "a = ?", vec![1.into()]);
        assert_eq!(s.sql, "a = ?");
    }
}
