// SPDX-License-Identifier: GPL-2.0

//! The `memmap=` reservations of the kernel command line, found as the
//! kernel finds them at boot, so that the window is only ever placed in
//! memory the user set aside, never in a range firmware reserved (which
//! looks the same in `/proc/iomem`: "Reserved").
//!
//! The kernel splits its command line with `next_arg()` (lib/cmdline.c:
//! whitespace outside double quotes, quotes stripped, nothing after `--`),
//! splits each `memmap=` value at commas (`parse_memmap_opt()`) and reads
//! each item with `parse_memmap_one()` (arch/x86/kernel/e820.c):
//! `SIZE$START` adds an E820 reserved range, `SIZE!START` an E820 protected
//! (legacy persistent) memory range, both numbers read by `memparse()`. The
//! other forms (`@`, `#`, `%`, `exactmap`, a plain size) reserve nothing a
//! device may use and are ignored here.
//!
//! Modules cannot reach `saved_command_line`, so the command line is read
//! from `/proc/cmdline`, which prints exactly that.

use kernel::{bindings, error::from_err_ptr, prelude::*};

/// How a `memmap=` option reserved its range, and so what the kernel
/// published it as in `/proc/iomem`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `memmap=SIZE$START`: E820 reserved, a "Reserved" resource.
    Reserved,
    /// `memmap=SIZE!START`: E820 protected memory, a "Persistent Memory
    /// (legacy)" resource.
    Protected,
}

impl Kind {
    /// The `IORES_DESC_*` of the resource the kernel made of the range.
    pub(crate) fn desc(self) -> usize {
        match self {
            Kind::Reserved => bindings::IORES_DESC_RESERVED as usize,
            Kind::Protected => bindings::IORES_DESC_PERSISTENT_MEMORY_LEGACY as usize,
        }
    }

    /// How the range is named in `/proc/iomem`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Reserved => "Reserved",
            Kind::Protected => "Persistent Memory (legacy)",
        }
    }
}

/// One `memmap=` reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub(crate) start: u64,
    pub(crate) size: u64,
    pub(crate) kind: Kind,
}

impl Reservation {
    /// Whether `[base, base + size)` lies inside this reservation.
    fn holds(&self, base: u64, size: u64) -> bool {
        let (Some(end), Some(mine)) = (base.checked_add(size), self.start.checked_add(self.size))
        else {
            return false;
        };
        self.start <= base && end <= mine
    }
}

/// `isspace()` of the kernel's `ctype` (which counts 0xa0 as a space).
fn is_space(c: u8) -> bool {
    matches!(c, b'\t'..=b'\r' | b' ' | 0xa0)
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| is_space(c)).count();
    &s[n..]
}

/// `next_arg()`: the first parameter of `args` (which starts with no
/// space), its value if it has an `=`, and the rest.
fn next_arg(args: &[u8]) -> (&[u8], Option<&[u8]>, &[u8]) {
    let (args, quoted) = match args.first() {
        Some(b'"') => (&args[1..], true),
        _ => (args, false),
    };
    let mut in_quote = quoted;
    let mut equals = 0;
    let mut i = 0;
    while i < args.len() && args[i] != 0 {
        if is_space(args[i]) && !in_quote {
            break;
        }
        // As in C, an `=` in the first place does not count.
        if equals == 0 && args[i] == b'=' {
            equals = i;
        }
        if args[i] == b'"' {
            in_quote = !in_quote;
        }
        i += 1;
    }
    let mut token = &args[..i];
    let rest = skip_spaces(args.get(i + 1..).unwrap_or(&[]));
    let ends_in_quote = token.last() == Some(&b'"');
    if equals == 0 {
        if quoted && ends_in_quote {
            token = &token[..token.len() - 1];
        }
        return (token, None, rest);
    }
    let param = &token[..equals];
    let mut val = &token[equals + 1..];
    // Don't include quotes in the value (the closing one goes once, whether
    // the value or the whole argument was quoted).
    if val.first() == Some(&b'"') {
        val = &val[1..];
        if ends_in_quote && !val.is_empty() {
            val = &val[..val.len() - 1];
        }
    } else if quoted && ends_in_quote && !val.is_empty() {
        val = &val[..val.len() - 1];
    }
    (param, Some(val), rest)
}

/// `simple_strtoull(s, &end, 0)`: a number in base 16 (`0x`), 8 (`0`) or
/// 10; a value that does not fit saturates, as in the C function.
fn strtoull(s: &[u8]) -> (u64, &[u8]) {
    let (base, digits) = match s {
        [b'0', x, d, ..] if (*x | 0x20) == b'x' && d.is_ascii_hexdigit() => (16, &s[2..]),
        [b'0', ..] => (8, s),
        _ => (10, s),
    };
    let mut value: u64 = 0;
    let mut n = 0;
    for &c in digits {
        let Some(d) = (c as char).to_digit(base) else {
            break;
        };
        value = value
            .checked_mul(base.into())
            .and_then(|v| v.checked_add(d.into()))
            .unwrap_or(u64::MAX);
        n += 1;
    }
    (value, &digits[n..])
}

/// `memparse()`: a number with an optional K, M, G, T, P or E suffix (any
/// case); a value that does not fit saturates. Returns the value and the
/// rest.
pub(crate) fn memparse(s: &[u8]) -> (u64, &[u8]) {
    let (value, rest) = strtoull(s);
    let shift = match rest.first().map(|c| c.to_ascii_uppercase()) {
        Some(b'K') => 10,
        Some(b'M') => 20,
        Some(b'G') => 30,
        Some(b'T') => 40,
        Some(b'P') => 50,
        Some(b'E') => 60,
        _ => return (value, rest),
    };
    if rest.len() == s.len() {
        // A suffix without a number is not consumed.
        return (value, rest);
    }
    let shifted = if value.leading_zeros() >= shift {
        value << shift
    } else {
        u64::MAX
    };
    (shifted, &rest[1..])
}

/// `parse_memmap_one()` for one item of a `memmap=` value.
fn parse_item(item: &[u8]) -> Option<Reservation> {
    let (size, rest) = memparse(item);
    if rest.len() == item.len() {
        return None;
    }
    let kind = match rest.first() {
        Some(b'$') => Kind::Reserved,
        Some(b'!') => Kind::Protected,
        _ => return None,
    };
    // The kernel adds the range before it checks for trailing garbage.
    let (start, _) = memparse(&rest[1..]);
    (size != 0).then_some(Reservation { start, size, kind })
}

/// Calls `f` with every `memmap=` reservation of `cmdline`, in order.
pub(crate) fn for_each(cmdline: &[u8], mut f: impl FnMut(Reservation)) {
    let mut args = skip_spaces(cmdline);
    while !args.is_empty() && args[0] != 0 {
        let (param, val, rest) = next_arg(args);
        args = rest;
        match val {
            // `parse_args()` stops at `--`: the rest is for init.
            None if param == b"--" => return,
            Some(val) if param == b"memmap" => val
                .split(|&c| c == b',')
                .filter_map(parse_item)
                .for_each(&mut f),
            _ => {}
        }
    }
}

/// The `memmap=` reservation of `cmdline` that holds all of
/// `[base, base + size)`, if one does.
pub(crate) fn find(cmdline: &[u8], base: u64, size: u64) -> Option<Reservation> {
    let mut found = None;
    for_each(cmdline, |r| {
        if found.is_none() && r.holds(base, size) {
            found = Some(r);
        }
    });
    found
}

/// Longest command line read; the kernel's own limit is 2048 bytes on x86
/// (`COMMAND_LINE_SIZE`), plus what a boot configuration adds.
const MAX_CMDLINE: usize = 16 * 1024;

/// Holds a file opened with `filp_open()`; closed when dropped.
struct File(*mut bindings::file);

impl Drop for File {
    fn drop(&mut self) {
        // SAFETY: opened by `filp_open()`, closed once; no lock owner.
        unsafe { bindings::filp_close(self.0, core::ptr::null_mut()) };
    }
}

/// The kernel command line, as `/proc/cmdline` shows it. Process context.
pub(crate) fn kernel_cmdline() -> Result<KVec<u8>> {
    // SAFETY: a NUL-terminated path; the result is a file or an error
    // pointer.
    let file = from_err_ptr(unsafe {
        bindings::filp_open(c"/proc/cmdline".as_char_ptr(), bindings::O_RDONLY as i32, 0)
    })?;
    let file = File(file);
    let mut line = KVec::new();
    let mut chunk = [0u8; 256];
    let mut pos: bindings::loff_t = 0;
    while line.len() < MAX_CMDLINE {
        // SAFETY: `chunk` is writable for its length; `pos` is ours.
        let n = unsafe {
            bindings::kernel_read(file.0, chunk.as_mut_ptr().cast(), chunk.len(), &mut pos)
        };
        if n < 0 {
            return Err(Error::from_errno(n as i32));
        }
        if n == 0 {
            break;
        }
        line.extend_from_slice(&chunk[..n as usize], GFP_KERNEL)?;
    }
    Ok(line)
}

#[kunit_tests(mock_pci_memmap)]
mod tests {
    use super::*;

    fn all(cmdline: &[u8]) -> KVec<Reservation> {
        let mut v = KVec::new();
        for_each(cmdline, |r| {
            // An allocation failure shows as a missing entry.
            let _ = v.push(r, GFP_KERNEL);
        });
        v
    }

    const fn res(start: u64, size: u64) -> Reservation {
        Reservation {
            start,
            size,
            kind: Kind::Reserved,
        }
    }

    #[test]
    fn memparse_like_the_kernel() {
        assert_eq!(memparse(b"256M$"), (256 << 20, &b"$"[..]));
        assert_eq!(memparse(b"0x40000000"), (0x4000_0000, &b""[..]));
        assert_eq!(memparse(b"0X1fG"), (0x1f << 30, &b""[..]));
        assert_eq!(memparse(b"010k"), (8 << 10, &b""[..]));
        assert_eq!(memparse(b"4g!"), (4 << 30, &b"!"[..]));
        assert_eq!(memparse(b"1E"), (1 << 60, &b""[..]));
        // Saturates when the number or the suffix overflows.
        assert_eq!(memparse(b"32E"), (u64::MAX, &b""[..]));
        assert_eq!(memparse(b"18446744073709551616K"), (u64::MAX, &b""[..]));
        // `0x` without a hex digit is an octal 0 followed by "x".
        assert_eq!(memparse(b"0xg"), (0, &b"xg"[..]));
        // A suffix without a number is not one.
        assert_eq!(memparse(b"M"), (0, &b"M"[..]));
        assert_eq!(memparse(b"$1"), (0, &b"$1"[..]));
    }

    #[test]
    fn memparse_matches_the_c_function() {
        for s in [
            &b"256M$0x40000000\0"[..],
            b"0x10000000\0",
            b"0777K\0",
            b"12345\0",
            b"0xfffffffffG\0",
            b"99999999999999999999999\0",
            b"2m!0x1000\0",
            b"x\0",
        ] {
            let mut end: *mut kernel::ffi::c_char = core::ptr::null_mut();
            // SAFETY: a NUL-terminated string; `end` points into it after.
            let c = unsafe { bindings::memparse(s.as_ptr().cast(), &mut end) };
            // SAFETY: `end` lies inside `s`.
            let used = unsafe { end.cast::<u8>().offset_from(s.as_ptr()) } as usize;
            let (v, rest) = memparse(&s[..s.len() - 1]);
            assert_eq!(v, c);
            assert_eq!(s.len() - 1 - rest.len(), used);
        }
    }

    #[test]
    fn finds_both_reserving_forms() {
        let v = all(b"console=ttyS0 memmap=256M$0x40000000 memmap=64M!0x80000000 ro\n");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0], res(0x4000_0000, 256 << 20));
        assert_eq!(
            v[1],
            Reservation {
                start: 0x8000_0000,
                size: 64 << 20,
                kind: Kind::Protected,
            }
        );
    }

    #[test]
    fn ignores_other_forms() {
        let v = all(b"memmap=exactmap memmap=640K@0 memmap=1M#0x100000 memmap=4M%0x60000000-1+2 memmap=2G mem=1G memmap=0$0x1000");
        assert_eq!(v.len(), 0);
    }

    #[test]
    fn splits_lists_and_quotes() {
        let v = all(
            b"memmap=1M$0x1000000,2M$0x2000000 \"memmap=3M$0x3000000\" memmap=\"4M$0x4000000\"",
        );
        assert_eq!(v.len(), 4);
        assert_eq!(v[0], res(0x100_0000, 1 << 20));
        assert_eq!(v[1], res(0x200_0000, 2 << 20));
        assert_eq!(v[2], res(0x300_0000, 3 << 20));
        assert_eq!(v[3], res(0x400_0000, 4 << 20));
        // Trailing garbage after START still reserved the range.
        let v = all(b"memmap=1M$0x1000000junk");
        assert_eq!(v.len(), 1);
        // Quoted spaces belong to the argument.
        let v = all(b"foo=\"a memmap=1M$0x1000000\" bar");
        assert_eq!(v.len(), 0);
    }

    #[test]
    fn stops_at_double_dash() {
        let v = all(b"memmap=1M$0x1000000 -- memmap=2M$0x2000000");
        assert_eq!(v.len(), 1);
        // Not an option name.
        let v = all(b"xmemmap=1M$0x1000000 memmap_x=1M$0x1000000 =memmap=1M$0x1000000");
        assert_eq!(v.len(), 0);
    }

    #[test]
    fn find_needs_one_reservation_holding_the_window() {
        let line = b"memmap=256M$0x40000000 memmap=16M$0x50000000";
        assert!(find(line, 0x4000_0000, 0x1000_0000).is_some());
        assert!(find(line, 0x4800_0000, 0x100_0000).is_some());
        // Across two reservations: not inside one.
        assert!(find(line, 0x4f00_0000, 0x200_0000).is_none());
        assert!(find(line, 0x3ff0_0000, 0x20_0000).is_none());
        assert!(find(line, 0x5100_0000, 0x100_0000).is_none());
        // No wrap-around.
        assert!(find(b"memmap=16E$0", 1, u64::MAX).is_none());
    }
}
