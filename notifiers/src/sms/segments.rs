//! SMS segment arithmetic. A text made only of GSM 03.38 characters is sent in GSM-7: 160
//! septets in one segment, 153 per segment when concatenated (extension characters such as
//! `€ [ ] { } ^ ~ | \` take two septets). Anything else is sent in UCS-2: 70 UTF-16 units in
//! one segment, 67 per segment when concatenated. [`fit`] cuts a text to a number of
//! segments, ending it with `…` when cut.

/// The GSM 03.38 basic character set.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The GSM 03.38 extension table (two septets each).
const GSM_EXTENDED: &str = "^{}\\[~]|€\u{000C}";

/// The encoding an SMS text needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 7-bit default alphabet.
    Gsm7,
    /// UCS-2 (UTF-16).
    Ucs2,
}

fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The encoding `text` needs.
pub fn encoding(text: &str) -> Encoding {
    if text.chars().all(|c| gsm_septets(c).is_some()) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// Length in the encoding's units (septets or UTF-16 units).
fn units(text: &str, enc: Encoding) -> usize {
    match enc {
        Encoding::Gsm7 => text.chars().map(|c| gsm_septets(c).unwrap_or(2)).sum(),
        Encoding::Ucs2 => text.encode_utf16().count(),
    }
}

fn unit_of(c: char, enc: Encoding) -> usize {
    match enc {
        Encoding::Gsm7 => gsm_septets(c).unwrap_or(2),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

/// (single-segment capacity, per-segment capacity when concatenated).
fn capacity(enc: Encoding) -> (usize, usize) {
    match enc {
        Encoding::Gsm7 => (160, 153),
        Encoding::Ucs2 => (70, 67),
    }
}

/// How many segments `text` takes (0 for an empty text).
pub fn count(text: &str) -> usize {
    let enc = encoding(text);
    let n = units(text, enc);
    let (single, multi) = capacity(enc);
    if n == 0 {
        0
    } else if n <= single {
        1
    } else {
        n.div_ceil(multi)
    }
}

/// Most units `segments` segments hold in `enc`.
fn room(enc: Encoding, segments: usize) -> usize {
    let (single, multi) = capacity(enc);
    match segments {
        0 => 0,
        1 => single,
        n => n * multi,
    }
}

/// `text` cut to at most `max_segments` segments (at least 1), ending with `…` when cut.
/// Cutting a GSM-7 text keeps it GSM-7 (`…` is not GSM, so `...` is used there).
pub fn fit(text: &str, max_segments: usize) -> String {
    let max_segments = max_segments.max(1);
    if count(text) <= max_segments {
        return text.to_string();
    }
    let enc = encoding(text);
    let ellipsis = match enc {
        Encoding::Gsm7 => "...",
        Encoding::Ucs2 => "…",
    };
    let budget = room(enc, max_segments).saturating_sub(units(ellipsis, enc));
    let mut used = 0;
    let mut out = String::new();
    for c in text.chars() {
        let u = unit_of(c, enc);
        if used + u > budget {
            break;
        }
        used += u;
        out.push(c);
    }
    let trimmed = out.trim_end().to_string();
    trimmed + ellipsis
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_gsm_and_ucs2_segments() {
        assert_eq!(count(""), 0);
        assert_eq!(count(&"a".repeat(160)), 1);
        assert_eq!(count(&"a".repeat(161)), 2);
        assert_eq!(count(&"a".repeat(306)), 2);
        assert_eq!(count(&"a".repeat(307)), 3);
        // Extension characters take two septets.
        assert_eq!(count(&"€".repeat(80)), 1);
        assert_eq!(count(&"€".repeat(81)), 2);
        // One non-GSM character switches the whole text to UCS-2.
        assert_eq!(encoding("node-b NotReady ✓"), Encoding::Ucs2);
        assert_eq!(count(&"告".repeat(70)), 1);
        assert_eq!(count(&"告".repeat(71)), 2);
        assert_eq!(count(&"告".repeat(134)), 2);
        assert_eq!(count(&"告".repeat(135)), 3);
        // Emoji are two UTF-16 units.
        assert_eq!(count(&"🔥".repeat(35)), 1);
        assert_eq!(count(&"🔥".repeat(36)), 2);
    }

    #[test]
    fn fit_cuts_with_an_ellipsis() {
        let short = "CRITICAL [prod] NodeNotReady: node-b";
        assert_eq!(fit(short, 1), short);
        let long = "x".repeat(1000);
        let one = fit(&long, 1);
        assert_eq!(count(&one), 1);
        assert_eq!(one.len(), 160);
        assert!(one.ends_with("..."));
        let two = fit(&long, 2);
        assert_eq!(two.len(), 306);
        let cjk = "节点未就绪".repeat(100);
        let c = fit(&cjk, 2);
        assert_eq!(count(&c), 2);
        assert!(c.ends_with('…'));
        assert_eq!(c.encode_utf16().count(), 134);
    }

    proptest! {
        #[test]
        fn fit_never_exceeds(text in "\\PC{0,400}", max in 1usize..5) {
            let out = fit(&text, max);
            prop_assert!(count(&out) <= max, "{} segments: {out:?}", count(&out));
            if count(&text) <= max {
                prop_assert_eq!(out, text);
            }
        }
    }
}
