//! Small helpers shared by the hand-written SVG figures: escaping, fixed-precision
//! numbers, the server palette and short event ids.

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate with one decimal: fixed precision keeps the bytes reproducible.
pub fn num(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded == rounded.trunc() { format!("{}", rounded as i64) } else { format!("{rounded:.1}") }
}

/// Server colours (Tableau 10 without its red and orange, which mark rejected and
/// soft-failed events).
const PALETTE: &[(u8, u8, u8)] = &[
    (0x4e, 0x79, 0xa7),
    (0x59, 0xa1, 0x4f),
    (0xb0, 0x7a, 0xa1),
    (0x76, 0xb7, 0xb2),
    (0xed, 0xc9, 0x48),
    (0xff, 0x9d, 0xa7),
    (0x9c, 0x75, 0x5f),
    (0xba, 0xb0, 0xac),
    (0x86, 0xbc, 0xb6),
    (0x49, 0x98, 0x94),
];

/// Servers past the palette: one neutral grey, never a repeated colour (a repeat would
/// silently make two servers look like one); figures name them in their legends.
pub const OTHER_SERVERS: (u8, u8, u8) = (0x8c, 0x8c, 0x8c);

/// The colour of the server at `index` in the room's server list: the first ten have
/// their own, the rest share [`OTHER_SERVERS`].
pub fn server_rgb(index: usize) -> (u8, u8, u8) {
    PALETTE.get(index).copied().unwrap_or(OTHER_SERVERS)
}

pub fn server_color(index: usize) -> String {
    let (r, g, b) = server_rgb(index);
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// A lighter tint of the server colour, for fills.
pub fn server_tint(index: usize) -> String {
    let (r, g, b) = server_rgb(index);
    let tint = |c: u8| 255 - (255 - u16::from(c)) * 35 / 100;
    format!("#{:02x}{:02x}{:02x}", tint(r), tint(g), tint(b))
}

pub const REJECTED: &str = "#d62728";
pub const SOFT_FAILED: &str = "#ff7f0e";
pub const MERGE: &str = "#6a3d9a";

/// `$AbCdEf…` for long event ids; short ids as they are.
pub fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 9 {
        id.to_owned()
    } else {
        format!("{}…", chars[..7].iter().collect::<String>())
    }
}

/// Cuts `text` to at most `max` characters, with an ellipsis.
pub fn clip(text: &str, max: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max {
        text.to_owned()
    } else {
        format!("{}…", chars[..max.saturating_sub(1)].iter().collect::<String>())
    }
}

/// The start of a standalone SVG document.
pub fn open(width: f64, height: f64, class: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         class=\"{class}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"DejaVu Sans, Verdana, sans-serif\">\n",
        w = num(width),
        h = num(height)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.25), "1.3");
        assert_eq!(num(-0.04), "0");
        assert_eq!(short_id("$a"), "$a");
        assert_eq!(short_id("$abcdefghijklmnop"), "$abcdef…");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(server_tint(0).len(), 7);
    }

    #[test]
    fn server_colours_never_repeat() {
        // The first ten are distinct and none is the shared grey; every later server is
        // the shared grey, never a colour an earlier server has.
        let first: Vec<(u8, u8, u8)> = (0..10).map(server_rgb).collect();
        for (i, colour) in first.iter().enumerate() {
            assert!(!first[..i].contains(colour), "colour {i} repeats");
            assert_ne!(*colour, OTHER_SERVERS);
        }
        for index in [10, 11, 99, 999] {
            assert_eq!(server_rgb(index), OTHER_SERVERS);
        }
    }
}
