//! URLs safe to show: in logs, errors and `Debug` output.
//!
//! Pure string handling (no URL parser, no network dependency), so every
//! crate that shows a connection or webhook URL hides its secrets the same
//! way.

/// `scheme://user:***@host/…?password=***`: hides the password of a URL
/// (in the user info, and query parameters named like `password`,
/// `token`, `secret` or `key`).
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = redact_userinfo(head);
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _))
                    if ["pass", "token", "secret", "key"]
                        .iter()
                        .any(|s| k.to_ascii_lowercase().contains(s)) =>
                {
                    format!("{k}=***")
                }
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Hides the password in the user info of `url` (`user:***@`).
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact_url("postgres://vitalis:s3cret@db:5432/x?sslmode=require"),
            "postgres://vitalis:***@db:5432/x?sslmode=require"
        );
        assert_eq!(redact_url("sqlite://vitalis.db"), "sqlite://vitalis.db");
        assert_eq!(
            redact_url("postgres://db/x?sslmode=require&password=pw&apiToken=t"),
            "postgres://db/x?sslmode=require&password=***&apiToken=***"
        );
        assert_eq!(redact_url("http://user@h/p"), "http://user@h/p");
        assert_eq!(
            redact_url(
                "postgres://vitalis:s3cret@db.internal:5432/vitalis?sslmode=require&password=x"
            ),
            "postgres://vitalis:***@db.internal:5432/vitalis?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("postgres://vitalis@h/db"),
            "postgres://vitalis@h/db"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/v.db"),
            "sqlite:///var/lib/v.db"
        );
        assert_eq!(redact_url("sqlite:v.db"), "sqlite:v.db");
    }
}
