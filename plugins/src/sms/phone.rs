//! Phone numbers: E.164 normalisation and masking.
//!
//! Phone numbers are personal data: [`mask`] keeps only the last three digits, and
//! [`redact_numbers`] does the same to every number inside a text (a service's error message quoting
//! the number, say) before it is returned or logged.

use thiserror::Error;

use crate::Disposition;

/// A string that is not an E.164 phone number. Deliberately does not quote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("The phone number is not in E.164 form: '+' followed by 8 to 15 digits, the first not 0.")]
pub struct InvalidPhoneNumber;

impl InvalidPhoneNumber {
    /// Always [`Disposition::DeadLetter`]: the number will not become valid by retrying.
    pub fn disposition(&self) -> Disposition {
        Disposition::DeadLetter
    }
}

/// `input` in E.164 form (`+254712345678`), after removing spaces, dashes, dots and parentheses:
/// `+` followed by 8 to 15 digits, the first of them 1-9.
///
/// # Errors
///
/// [`InvalidPhoneNumber`] for anything else (no `+`, a national number, letters, too short or long).
pub fn e164(input: &str) -> Result<String, InvalidPhoneNumber> {
    let cleaned: String = input
        .chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '-' | '.' | '(' | ')')))
        .collect();
    let digits = cleaned.strip_prefix('+').ok_or(InvalidPhoneNumber)?;
    let valid = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if valid {
        Ok(cleaned)
    } else {
        Err(InvalidPhoneNumber)
    }
}

/// `number` with every digit but the last three replaced by `*`: `+254712345678` → `+*********678`.
pub fn mask(number: &str) -> String {
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    number
        .chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen + 3 > digits { c } else { '*' }
        })
        .collect()
}

/// `text` with every run of 7 or more digits (with an optional leading `+`) masked as by [`mask`].
pub fn redact_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let digits = run.chars().filter(char::is_ascii_digit).count();
        if digits >= 7 {
            out.push_str(&mask(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || (c == '+' && run.is_empty()) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised() {
        assert_eq!(e164("+254 712 345 678").unwrap(), "+254712345678");
        assert_eq!(e164("+1 (415) 555-0100").unwrap(), "+14155550100");
        assert_eq!(e164("+234.803.123.4567").unwrap(), "+2348031234567");
        assert_eq!(e164("+12345678").unwrap(), "+12345678");
        assert_eq!(e164("+123456789012345").unwrap(), "+123456789012345");
        for bad in [
            "0712345678",
            "254712345678",
            "+0712345678",
            "+1234567",
            "+1234567890123456",
            "+2547a2345678",
            "",
            "+",
        ] {
            assert_eq!(e164(bad), Err(InvalidPhoneNumber), "{bad}");
        }
        assert!(!InvalidPhoneNumber.to_string().contains("0712"));
    }

    #[test]
    fn numbers_are_masked() {
        assert_eq!(mask("+254712345678"), "+*********678");
        assert_eq!(mask("+12"), "+12");
        assert_eq!(
            redact_numbers("The 'To' number +254712345678 is not valid (error 21211)."),
            "The 'To' number +*********678 is not valid (error 21211)."
        );
        assert_eq!(redact_numbers("call 0712345678 now"), "call *******678 now");
    }
}
