//! Which characters may name a stream so that two different names never look the same.
//!
//! A name's letters come from one script (Latin, Greek, Cyrillic, ...), or from one of the
//! combinations a language writes with: Latin with Han, Hiragana and Katakana (Japanese), with
//! Han and Hangul (Korean), with Han and Bopomofo (Chinese) (the "highly restrictive" level of
//! Unicode TS #39, section 5.2). So `ok` with a Cyrillic `о` is refused. Digits, ASCII
//! punctuation, spaces and symbols belong to no script. Characters that show nothing or change
//! the letter before them are refused everywhere: format characters (zero-width spaces and
//! joiners, direction marks, soft hyphen), whitespace other than the ASCII space, and generic
//! combining marks (write `ü`, not `u` followed by U+0308).
//!
//! A name made wholly of another script's look-alike letters (`ор`, all Cyrillic) is one
//! script, so the catalogue also compares [`skeleton`]s: a new name whose Greek, Cyrillic and
//! fullwidth look-alikes, mapped to the Latin letters they look like, give an existing name is
//! refused. The map covers those scripts' look-alikes of Latin letters only, not every
//! confusable of Unicode TS #39.

/// A script, as far as the mixing rule needs: the named ones, and otherwise the 128-character
/// block a letter is in (a conservative stand-in: two letters of an unlisted script in different
/// blocks count as different scripts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
    Han,
    Hiragana,
    Katakana,
    Hangul,
    Bopomofo,
    Block(u32),
}

/// The script of a letter or digit outside ASCII's digits; `None` for characters of no script.
fn script(c: char) -> Option<Script> {
    if !c.is_alphanumeric() || c.is_ascii_digit() {
        return None;
    }
    let code = u32::from(c);
    let script = match code {
        0x41..=0x5a | 0x61..=0x7a | 0xaa | 0xba | 0xc0..=0x24f | 0x250..=0x2af => Script::Latin,
        0x1d00..=0x1d7f | 0x1e00..=0x1eff | 0x2c60..=0x2c7f | 0xa720..=0xa7ff => Script::Latin,
        0xab30..=0xab6f | 0xff21..=0xff3a | 0xff41..=0xff5a => Script::Latin,
        0x370..=0x3ff | 0x1f00..=0x1fff => Script::Greek,
        0x400..=0x52f | 0x1c80..=0x1c8f | 0x2de0..=0x2dff | 0xa640..=0xa69f => Script::Cyrillic,
        0x2e80..=0x2fdf | 0x3005..=0x3007 | 0x3021..=0x3029 | 0x3038..=0x303b => Script::Han,
        0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xf900..=0xfaff | 0x20000..=0x3ffff => Script::Han,
        0x3040..=0x309f => Script::Hiragana,
        0x30a0..=0x30ff | 0x31f0..=0x31ff | 0xff66..=0xff9f => Script::Katakana,
        0x1100..=0x11ff | 0x3130..=0x318f | 0xa960..=0xa97f | 0xac00..=0xd7ff => Script::Hangul,
        0xffa0..=0xffdc => Script::Hangul,
        0x3100..=0x312f | 0x31a0..=0x31bf => Script::Bopomofo,
        _ => Script::Block(code >> 7),
    };
    Some(script)
}

/// Characters that show nothing, or only change the character before them.
fn is_invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0xad | 0x34f
            | 0x300..=0x36f
            | 0x61c
            | 0x115f..=0x1160
            | 0x17b4..=0x17b5
            | 0x180b..=0x180f
            | 0x1ab0..=0x1aff
            | 0x1dc0..=0x1dff
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x206f
            | 0x20d0..=0x20ff
            | 0x3164
            | 0xfe00..=0xfe0f
            | 0xfe20..=0xfe2f
            | 0xfeff
            | 0xffa0
            | 0xfff0..=0xfffb
            | 0x1d173..=0x1d17a
            | 0xe0000..=0xe0fff
    ) || (c.is_whitespace() && c != ' ')
}

/// Why `name`'s characters could make it look like another name, if they could.
pub(crate) fn look_alike_reason(name: &str) -> Option<&'static str> {
    if name.chars().any(is_invisible) {
        return Some(
            "a name must not contain invisible characters (format characters, combining marks, \
             whitespace other than the ASCII space)",
        );
    }
    let mut seen: Vec<Script> = Vec::new();
    for script in name.chars().filter_map(script) {
        if !seen.contains(&script) {
            seen.push(script);
        }
    }
    let allowed = |set: &[Script]| seen.iter().all(|s| set.contains(s));
    let single = seen.len() <= 1;
    let japanese = allowed(&[
        Script::Latin,
        Script::Han,
        Script::Hiragana,
        Script::Katakana,
    ]);
    let korean = allowed(&[Script::Latin, Script::Han, Script::Hangul]);
    let chinese = allowed(&[Script::Latin, Script::Han, Script::Bopomofo]);
    if single || japanese || korean || chinese {
        None
    } else {
        Some(
            "a name must not mix letters of different scripts (such as a Cyrillic 'о' among \
             Latin letters), which makes it look like another name",
        )
    }
}

/// `name` with each Greek, Cyrillic and fullwidth letter that looks like a Latin one replaced
/// by it: two names with the same skeleton look the same.
pub(crate) fn skeleton(name: &str) -> String {
    name.chars().map(latin_look_alike).collect()
}

/// The Latin letter `c` looks like, or `c`.
fn latin_look_alike(c: char) -> char {
    let code = u32::from(c);
    if (0xff01..=0xff5e).contains(&code) {
        // Fullwidth ASCII.
        return char::from_u32(code - 0xfee0).unwrap_or(c);
    }
    match c {
        'а' | 'α' | 'ɑ' => 'a',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' => 'e',
        'ɡ' => 'g',
        'һ' => 'h',
        'і' | 'ι' | 'ı' => 'i',
        'ј' => 'j',
        'κ' => 'k',
        'ӏ' => 'l',
        'ο' | 'о' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'υ' => 'u',
        'ν' => 'v',
        'ԝ' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        'А' | 'Α' => 'A',
        'В' | 'Β' => 'B',
        'С' | 'Ϲ' => 'C',
        'Е' | 'Ε' => 'E',
        'Н' | 'Η' => 'H',
        'І' | 'Ι' | 'Ӏ' => 'I',
        'Ј' => 'J',
        'К' | 'Κ' => 'K',
        'М' | 'Μ' => 'M',
        'Ν' => 'N',
        'О' | 'Ο' => 'O',
        'Р' | 'Ρ' => 'P',
        'Ѕ' => 'S',
        'Т' | 'Τ' => 'T',
        'Х' | 'Χ' => 'X',
        'У' | 'Υ' | 'Ү' => 'Y',
        'Ζ' => 'Z',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_scripts_and_language_combinations_pass() {
        for good in [
            "ok",
            "patient-access",
            "ünïcode/stream.name 1",
            "Ærøskøbing_2024",
            "журнал-доступа",
            "αρχείο",
            "監査ログ-ひらがな-カタカナ-log",
            "감사로그-漢字-audit",
            "日志ㄅㄆ",
            "עברית",
            "سجل",
            "ऑडिट",
            "logs → archive ✓ 🙂",
        ] {
            assert_eq!(look_alike_reason(good), None, "{good:?}");
        }
    }

    #[test]
    fn look_alikes_in_one_script_share_a_skeleton() {
        assert_eq!(skeleton("\u{43e}\u{440}"), "op"); // all Cyrillic
        assert_eq!(skeleton("\u{3bf}\u{3c1}"), "op"); // all Greek
        assert_eq!(skeleton("\u{ff4f}\u{ff50}"), "op"); // fullwidth
        assert_eq!(skeleton("\u{421}\u{422}\u{41e}"), "CTO");
        assert_eq!(skeleton("op"), "op");
        assert_ne!(skeleton("журнал"), skeleton("log"));
    }

    #[test]
    fn mixed_scripts_and_invisible_characters_are_refused() {
        for bad in [
            "\u{43e}k",          // Cyrillic о, Latin k
            "p\u{430}tient",     // Cyrillic а
            "\u{3bf}k",          // Greek ο
            "\u{440}\u{3bf}",    // Cyrillic and Greek
            "log-журнал",        // Latin and Cyrillic words
            "ok\u{200b}",        // zero-width space
            "o\u{200d}k",        // zero-width joiner
            "\u{202e}ko",        // right-to-left override
            "u\u{308}ber",       // combining diaeresis
            "soft\u{ad}hyphen",  // soft hyphen
            "no\u{a0}break",     // no-break space
            "wide\u{3000}space", // ideographic space
            "\u{feff}bom",       // byte order mark
            "tag\u{e0041}",      // tag character
            "감사\u{43e}",       // Hangul and Cyrillic
            "ひらがな\u{3131}",  // Hiragana and Hangul
        ] {
            assert!(look_alike_reason(bad).is_some(), "{bad:?}");
        }
    }
}
