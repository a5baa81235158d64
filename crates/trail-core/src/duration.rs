//! Durations as people write them in Trail's settings and rules: a whole number and one
//! unit letter (`30s`, `10m`, `2h`, `30d`). One parser for the API and the
//! configuration; it never panics, whatever the text.

/// Seconds of a duration written as a whole number followed by one of `units` (each of
/// `s`, `m`, `h`, `d`), at most `max` seconds. The error says what is accepted.
pub fn parse_seconds(text: &str, units: &str, max: u64) -> Result<u64, String> {
    let t = text.trim();
    let examples = ["30s", "10m", "2h", "30d"]
        .into_iter()
        .filter(|e| e.chars().last().is_some_and(|u| units.contains(u)))
        .collect::<Vec<_>>()
        .join(", ");
    let bad = || format!("must be a duration such as {examples}, not '{}'", text.chars().take(40).collect::<String>());
    let unit = t.chars().next_back().ok_or_else(bad)?;
    let number = &t[..t.len() - unit.len_utf8()];
    if !units.contains(unit) || number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    n.checked_mul(mult).filter(|v| *v <= max).ok_or_else(|| format!("must be at most {max} seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_parse_and_bad_ones_say_so() {
        assert_eq!(parse_seconds("30s", "smhd", u64::MAX), Ok(30));
        assert_eq!(parse_seconds(" 10m ", "smhd", u64::MAX), Ok(600));
        assert_eq!(parse_seconds("2d", "smhd", u64::MAX), Ok(172_800));
        for bad in ["", "1", "m", "1é", "é", "1x", "-1m", "+1m", "1 m", "1.5h", "99999999999999999999s"] {
            assert!(parse_seconds(bad, "smhd", u64::MAX).is_err(), "{bad}");
        }
        assert!(parse_seconds("2d", "smh", u64::MAX).is_err(), "a unit not offered");
        assert!(parse_seconds("367d", "smhd", 366 * 86_400).unwrap_err().contains("at most"));
        assert!(parse_seconds(&format!("{}d", u64::MAX / 10), "smhd", u64::MAX).is_err(), "overflow");
    }

    proptest! {
        #[test]
        fn no_text_panics_the_parser(text in any::<String>(), units in "[smhdé]{0,4}", max in any::<u64>()) {
            let _ = parse_seconds(&text, &units, max);
        }

        #[test]
        fn no_number_and_unit_panics_it(n in any::<u64>(), unit in any::<char>()) {
            let _ = parse_seconds(&format!("{n}{unit}"), "smhd", u64::MAX);
        }
    }
}
