//! Unsigned integers in decimal without the formatting machinery: the trace writes a few
//! numbers per record, a server names each transaction by two numbers, and every response
//! starts with its status; through `write!` each took a few hundred instructions.

/// The decimal digits of `n` (no sign, no leading zeros; `0` for zero), written into
/// `digits` from its end: two digits per division.
pub fn decimal(n: u64, digits: &mut [u8; 20]) -> &[u8] {
    const PAIRS: &[u8; 200] =
        b"00010203040506070809101112131415161718192021222324252627282930313233343536373839\
        40414243444546474849505152535455565758596061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut n = n;
    let mut at = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    &digits[at..]
}

/// Appends `n` in decimal, as `format!("{n}")` writes it (and as JSON writes an unsigned
/// integer, which the trace's record lines rely on).
pub fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(n, &mut [0; 20]));
}

/// Appends `n` in decimal with at least three digits, as `format!("{n:03}")` writes it: an
/// HTTP status.
pub fn push_status(out: &mut Vec<u8>, n: u16) {
    let mut digits = [0; 20];
    let digits = decimal(u64::from(n), &mut digits);
    for _ in digits.len()..3 {
        out.push(b'0');
    }
    out.extend_from_slice(digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_format_writes_them() {
        let mut numbers = vec![0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, u64::MAX, u64::MAX - 1];
        numbers.extend((0..20).map(|p| 10u64.pow(p)));
        numbers.extend((1..20).map(|p| 10u64.pow(p) - 1));
        numbers.extend((0..64).map(|b| 1u64 << b));
        for n in numbers {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes(), "{n}");
        }
    }

    #[test]
    fn statuses_have_three_digits_at_least() {
        for n in [0u16, 7, 42, 99, 100, 200, 404, 599, 999, 1000, 65535] {
            let mut out = Vec::new();
            push_status(&mut out, n);
            assert_eq!(out, format!("{n:03}").into_bytes(), "{n}");
        }
    }
}
