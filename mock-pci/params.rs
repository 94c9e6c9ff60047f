// SPDX-License-Identifier: GPL-2.0

//! Validation of the module parameters.

use kernel::prelude::*;

/// Smallest BAR the module creates: one page, so that every BAR can be mmapped.
pub(crate) const MIN_BAR_SIZE: u64 = 4096;

/// Checks a BAR size parameter: a power of two of at least [`MIN_BAR_SIZE`].
pub(crate) fn bar_size(name: &str, size: u64) -> Result<u64> {
    if size < MIN_BAR_SIZE || !size.is_power_of_two() {
        pr_err!(
            "{}={} is invalid: use a power of two of at least {}\n",
            name,
            size,
            MIN_BAR_SIZE
        );
        return Err(EINVAL);
    }
    Ok(size)
}

#[kunit_tests(mock_pci_params)]
mod tests {
    use super::*;

    #[test]
    fn bar_size_accepts_powers_of_two() {
        assert_eq!(bar_size("t", 4096), Ok(4096));
        assert_eq!(bar_size("t", 2 << 20), Ok(2 << 20));
    }

    #[test]
    fn bar_size_rejects_bad_values() {
        assert_eq!(bar_size("t", 0), Err(EINVAL));
        assert_eq!(bar_size("t", 2048), Err(EINVAL));
        assert_eq!(bar_size("t", 3 << 20), Err(EINVAL));
    }
}
