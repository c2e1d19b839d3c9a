//! Database URLs (`postgres://`, `redis://`): validated, shown without
//! their userinfo, and their password taught to a [`Redactor`].

use crate::BuildError;
use crate::secret::{Redactor, redact_url};

/// Validates a database URL: `(shown, host, redactor)`, where `shown` has
/// no userinfo and the redactor knows the password.
pub(crate) fn parse_url(
    url: &str,
    schemes: &[&str],
) -> Result<(String, Option<String>, Redactor), BuildError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        BuildError::key(
            "url",
            format!(
                "url '{}' is not a URL ({e}); write it like {}://user:password@127.0.0.1:{}/db",
                shown_url_text(url),
                schemes[0],
                if schemes[0] == "redis" { 6379 } else { 5432 }
            ),
        )
    })?;
    let shown = redact_url(&parsed);
    if !schemes.contains(&parsed.scheme()) {
        return Err(BuildError::key(
            "url",
            format!(
                "url '{shown}' must start with {}://",
                schemes.join(":// or ")
            ),
        ));
    }
    let mut redactor = Redactor::new();
    if let Some(pw) = parsed.password() {
        add_password(&mut redactor, pw);
        add_password(&mut redactor, &percent_decode(pw));
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string());
    Ok((shown, host, redactor))
}

/// Passwords shorter than this are not scrubbed from free text: every
/// word holding the letter `p` would lose it for a password `p`. They never
/// appear anyway: URLs are shown without userinfo, and servers do not echo
/// passwords.
const MIN_SCRUBBED: usize = 4;

/// Teaches the redactor a password (see [`MIN_SCRUBBED`]).
pub(crate) fn add_password(redactor: &mut Redactor, password: &str) {
    if password.chars().count() >= MIN_SCRUBBED {
        redactor.add(password);
    }
}

/// A URL as text before it parsed: userinfo cut out.
pub(crate) fn shown_url_text(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Decodes `%XX` escapes (userinfo is stored percent-encoded).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_userinfo_and_passwords_are_scrubbed() {
        let (shown, host, r) = parse_url(
            "postgres://app:pa%40ss-word@db.internal:6432/x",
            &["postgres"],
        )
        .unwrap();
        assert_eq!(shown, "postgres://***@db.internal:6432/x");
        assert_eq!(host.as_deref(), Some("db.internal"));
        assert_eq!(
            r.redact("echo pa@ss-word and pa%40ss-word"),
            "echo *** and ***"
        );
        // Too short to scrub from free text (it is never shown anyway).
        let (_, _, r) = parse_url("postgres://u:p@h/x", &["postgres"]).unwrap();
        assert_eq!(r.redact("postgres"), "postgres");
        let (_, host, _) = parse_url("redis://[::1]:6379/0", &["redis"]).unwrap();
        assert_eq!(host.as_deref(), Some("::1"));
        let e = parse_url("mysql://u:hunter2@h/x", &["postgres", "postgresql"]).unwrap_err();
        assert!(
            e.message
                .contains("must start with postgres:// or postgresql://"),
            "{e}"
        );
        assert!(!e.message.contains("hunter2"));
        let e = parse_url("postgres://u:hunter2@h:notaport/x", &["postgres"]).unwrap_err();
        assert!(!e.message.contains("hunter2"), "{e}");
        assert_eq!(shown_url_text("x://a:b@h"), "x://***@h");
    }
}
