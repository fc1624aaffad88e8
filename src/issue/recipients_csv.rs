//! The recipients CSV of `oxbadge issue --csv`: a header row, then one recipient per row in an
//! `email` or an `id` column (exactly one of them per row), with an optional `validUntil`
//! (RFC 3339). Column names are matched without regard to case; cells are trimmed.

use super::Award;
use crate::ob::{self, Recipient};

/// Why the file as a whole cannot be read (a bad row is reported in its place instead).
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// Not readable as CSV (e.g. invalid UTF-8, or a row with a different number of fields).
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// Neither an `email` nor an `id` column.
    #[error("the CSV needs an `email` or an `id` column")]
    NoRecipientColumn,
}

/// Reads the recipients: one entry per data row, an [`Award`] or why that row (named by its line
/// number, the header being line 1) cannot be one. Untrusted input: the `csv` fuzz target feeds
/// it arbitrary bytes.
pub fn read(input: impl std::io::Read) -> Result<Vec<Result<Award, String>>, CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (email_col, id_col, until_col) = (col("email"), col("id"), col("validUntil"));
    if email_col.is_none() && id_col.is_none() {
        return Err(CsvError::NoRecipientColumn);
    }
    let mut rows = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record?;
        let get = |c: Option<usize>| c.and_then(|i| record.get(i)).filter(|v| !v.is_empty());
        let award = (|| -> Result<Award, String> {
            let recipient = match (get(email_col), get(id_col)) {
                (Some(e), None) => {
                    Recipient::Email(ob::normalize_email(e).map_err(|e| e.to_string())?)
                }
                (None, Some(i)) => Recipient::Id(ob::uri("id", i).map_err(|e| e.to_string())?),
                _ => return Err("give exactly one of email or id".into()),
            };
            let valid_until = get(until_col)
                .map(|v| {
                    chrono::DateTime::parse_from_rfc3339(v)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .map_err(|e| format!("validUntil: {e}"))
                })
                .transpose()?;
            Ok(Award {
                recipient,
                results: vec![],
                evidence: vec![],
                valid_until,
            })
        })();
        rows.push(award.map_err(|e| format!("line {}: {e}", line + 2)));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_awards_or_say_which_line_is_wrong() {
        let csv = "Email,validUntil\nA@Example.org,2030-01-01T00:00:00Z\n,\nnot-an-email,\n";
        let rows = read(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 3);
        let first = rows[0].as_ref().unwrap();
        assert!(matches!(&first.recipient, Recipient::Email(e) if e == "a@example.org"));
        assert!(first.valid_until.is_some());
        assert_eq!(
            rows[1].as_ref().unwrap_err(),
            "line 3: give exactly one of email or id"
        );
        assert!(rows[2].as_ref().unwrap_err().starts_with("line 4: "));
        assert!(matches!(
            read("name\nx\n".as_bytes()),
            Err(CsvError::NoRecipientColumn)
        ));
    }
}
