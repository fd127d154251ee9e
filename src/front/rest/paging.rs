//! Paging over REST: the page-size and page parameters as each API names them, checked
//! here (Twilio's bounds, no default for an empty value), and page errors the domain and
//! the backends report on `page_size` / `page_token` renamed to the parameters the caller
//! sent.

use serde::Deserialize;

use crate::domain::error::{Error, FieldViolation};

/// `pageSize` / `pageToken` of a v2 list.
#[derive(Debug, Deserialize)]
pub(super) struct V2ListQuery {
    #[serde(rename = "pageSize")]
    pub(super) page_size: Option<String>,
    #[serde(rename = "pageToken")]
    pub(super) page_token: Option<String>,
}

/// `PageSize` / `Page` / `PageToken` of a v1 list.
#[derive(Debug, Deserialize)]
pub(super) struct V1ListQuery {
    #[serde(rename = "PageSize")]
    pub(super) page_size: Option<String>,
    #[serde(rename = "Page")]
    pub(super) page: Option<String>,
    #[serde(rename = "PageToken")]
    pub(super) page_token: Option<String>,
}

/// The parameter names of one API's list.
#[derive(Debug, Clone, Copy)]
pub(super) struct Names {
    pub(super) page_size: &'static str,
    pub(super) page_token: &'static str,
}

pub(super) const V2: Names = Names {
    page_size: "pageSize",
    page_token: "pageToken",
};

pub(super) const V1: Names = Names {
    page_size: "PageSize",
    page_token: "PageToken",
};

fn invalid(field: &str, description: String) -> Error {
    Error::InvalidArgument(vec![FieldViolation {
        field: field.to_owned(),
        description,
    }])
}

/// The page size asked for: absent is 0 (the domain's default, 50); otherwise an integer
/// from 1 to `max`, or INVALID_ARGUMENT naming `name` (never the value).
pub(super) fn page_size(raw: Option<&str>, name: &str, max: u32) -> Result<i64, Error> {
    let Some(raw) = raw else { return Ok(0) };
    match raw.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(i64::from(n)),
        _ => Err(invalid(
            name,
            format!("must be an integer between 1 and {max}"),
        )),
    }
}

/// v1's `Page`: the caller's count of pages, absent 0, else an integer 0 or more.
pub(super) fn page_index(raw: Option<&str>) -> Result<u32, Error> {
    let Some(raw) = raw else { return Ok(0) };
    raw.parse::<u32>()
        .map_err(|_| invalid("Page", "must be an integer, 0 or more".to_owned()))
}

/// `err` with the domain's `page_size` / `page_token` renamed to `names`.
pub(super) fn renamed(err: Error, names: Names) -> Error {
    match err {
        Error::InvalidArgument(violations) => Error::InvalidArgument(
            violations
                .into_iter()
                .map(|mut v| {
                    match v.field.as_str() {
                        "page_size" => names.page_size.clone_into(&mut v.field),
                        "page_token" => names.page_token.clone_into(&mut v.field),
                        _ => {}
                    }
                    v
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_twilios_bounds_and_absent_is_the_default() {
        assert_eq!(page_size(None, "pageSize", 1000).ok(), Some(0));
        assert_eq!(page_size(Some("1"), "pageSize", 1000).ok(), Some(1));
        assert_eq!(page_size(Some("1000"), "pageSize", 1000).ok(), Some(1000));
        for bad in ["0", "1001", "-1", "", "abc", "3.5", "99999999999"] {
            let err = page_size(Some(bad), "pageSize", 1000).expect_err(bad);
            assert!(
                matches!(&err, Error::InvalidArgument(v) if v[0].field == "pageSize"),
                "{err:?}"
            );
        }
        assert!(page_size(Some("101"), "PageSize", 100).is_err());
        assert_eq!(page_index(None).ok(), Some(0));
        assert_eq!(page_index(Some("7")).ok(), Some(7));
        assert!(page_index(Some("-1")).is_err());
    }

    #[test]
    fn domain_page_fields_are_renamed_to_the_apis_parameters() {
        let err = renamed(crate::domain::page::bad_page_token(), V1);
        assert!(
            matches!(&err, Error::InvalidArgument(v) if v[0].field == "PageToken"),
            "{err:?}"
        );
        let other = renamed(Error::Internal("x".into()), V2);
        assert!(matches!(other, Error::Internal(_)));
    }
}
