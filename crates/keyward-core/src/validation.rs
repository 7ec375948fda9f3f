//! What a value that fails validation says: the field and what is wrong with it.

/// A field that failed validation, with a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The JSON field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    /// A validation error for `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// What a piece of text typed by a person is: a one-line name, or a description that may
/// span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// One line, and something visible in it.
    Name,
    /// May hold line breaks and tabs; may be empty.
    Description,
}

/// The one rule for every name and description a person gives (credentials, IP rules,
/// roles, organizations), whichever interface it came through: trimmed, at most `max`
/// characters, and none of the characters that make text lie about itself or about what is
/// beside it when shown:
///
/// - control characters (a description may hold line breaks and tabs);
/// - bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069), which reorder
///   what follows them on screen;
/// - U+FFFD, the replacement character, which a form decoder puts where the bytes sent
///   were not UTF-8;
/// - for a name, nothing but invisible characters (spaces, zero-width characters).
///
/// Returns the trimmed text; an empty description is `None`.
pub fn person_text(
    field: &'static str,
    text: &str,
    max: usize,
    kind: TextKind,
) -> Result<Option<String>, ValidationError> {
    let text = text.trim();
    let refuse = |message: &str| Err(ValidationError::new(field, message));
    if text.is_empty() {
        return match kind {
            TextKind::Name => refuse("must not be empty"),
            TextKind::Description => Ok(None),
        };
    }
    if text.chars().count() > max {
        return refuse(&format!("must be at most {max} characters"));
    }
    let allowed_control =
        |c: char| kind == TextKind::Description && matches!(c, '\n' | '\r' | '\t');
    if text.chars().any(|c| c.is_control() && !allowed_control(c)) {
        return refuse("must not contain control characters");
    }
    if text
        .chars()
        .any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
    {
        return refuse("must not contain bidirectional override characters");
    }
    if text.contains('\u{FFFD}') {
        return refuse("must be valid UTF-8 (it holds U+FFFD, which marks bytes that were not)");
    }
    if kind == TextKind::Name && text.chars().all(invisible) {
        return refuse("must contain a visible character");
    }
    Ok(Some(text.to_owned()))
}

/// Whether `c` shows nothing by itself: white space, zero-width characters and joiners,
/// and the fillers and marks that render blank.
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2060}'..='\u{2064}'
                | '\u{206A}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Result<Option<String>, ValidationError> {
        person_text("name", text, 10, TextKind::Name)
    }

    fn description(text: &str) -> Result<Option<String>, ValidationError> {
        person_text("description", text, 10, TextKind::Description)
    }

    #[test]
    fn names_and_descriptions_follow_one_rule() {
        assert_eq!(name("  Prod  ").unwrap().as_deref(), Some("Prod"));
        assert_eq!(name(&"é".repeat(10)).unwrap().unwrap().chars().count(), 10);
        assert_eq!(description("   ").unwrap(), None);
        assert_eq!(description("a\nb\tc").unwrap().as_deref(), Some("a\nb\tc"));
        for (bad, says) in [
            ("", "must not be empty"),
            (&"é".repeat(11) as &str, "at most 10"),
            ("a\nb", "control"),
            ("a\u{7f}b", "control"),
            ("a\u{202E}b", "bidirectional"),
            ("a\u{2067}b", "bidirectional"),
            ("a\u{FFFD}", "UTF-8"),
            ("\u{200B}\u{200D}", "visible"),
            ("\u{3164}", "visible"),
            ("\u{FEFF} \u{2060}", "visible"),
        ] {
            let error = name(bad).unwrap_err();
            assert_eq!(error.field, "name");
            assert!(error.message.contains(says), "{bad:?}: {}", error.message);
        }
        for bad in ["a\u{0}b", "a\u{202A}", "\u{FFFD}"] {
            assert!(description(bad).is_err(), "{bad:?}");
        }
        // Invisible characters inside visible text are the text's business.
        assert!(name("a\u{200D}b").is_ok());
        assert!(description("\u{200B}").is_ok());
    }
}
