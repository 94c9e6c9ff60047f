// SPDX-License-Identifier: GPL-2.0

//! The kselftest Makefile's decisions (`make print-build`): the cargo
//! target triple CROSS_COMPILE maps to, and which builds are x86_64 (the
//! others install a stub that reports a KTAP skip).

use std::process::Command;

/// `make print-build VARS...` in this directory, as `key=value` lines;
/// `None` when make is not installed.
fn decide(vars: &[&str]) -> Option<Vec<(String, String)>> {
    let out = Command::new("make")
        .args([
            "-s",
            "--no-print-directory",
            "-C",
            env!("CARGO_MANIFEST_DIR"),
        ])
        .arg("print-build")
        .args(vars)
        .env_remove("ARCH")
        .env_remove("CROSS_COMPILE")
        .env_remove("CARGO_TARGET")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn get<'a>(d: &'a [(String, String)], key: &str) -> &'a str {
    &d.iter().find(|(k, _)| k == key).unwrap().1
}

#[test]
fn cross_compile_maps_to_a_cargo_target() {
    let cases = [
        (
            "CROSS_COMPILE=aarch64-linux-gnu-",
            "aarch64-unknown-linux-gnu",
        ),
        (
            "CROSS_COMPILE=x86_64-linux-gnu-",
            "x86_64-unknown-linux-gnu",
        ),
        (
            "CROSS_COMPILE=/opt/cross/bin/riscv64-linux-gnu-",
            "riscv64-unknown-linux-gnu",
        ),
        (
            "CROSS_COMPILE=arm-linux-gnueabihf-",
            "arm-unknown-linux-gnueabihf",
        ),
        (
            "CROSS_COMPILE=x86_64-linux-musl-",
            "x86_64-unknown-linux-musl",
        ),
        (
            "CROSS_COMPILE=x86_64-unknown-linux-gnu-",
            "x86_64-unknown-linux-gnu",
        ),
        ("CROSS_COMPILE=", ""),
    ];
    for (var, want) in cases {
        let Some(d) = decide(&[var]) else {
            eprintln!("make not installed: skipped");
            return;
        };
        assert_eq!(get(&d, "target"), want, "{var}");
    }
    let d = decide(&[
        "CROSS_COMPILE=aarch64-linux-gnu-",
        "CARGO_TARGET=aarch64-unknown-linux-musl",
    ])
    .unwrap();
    assert_eq!(get(&d, "target"), "aarch64-unknown-linux-musl");
}

#[test]
fn only_x86_64_builds_the_program() {
    let Some(native) = decide(&[]) else {
        eprintln!("make not installed: skipped");
        return;
    };
    let x86_host = cfg!(target_arch = "x86_64");
    assert_eq!(get(&native, "supported") == "1", x86_host);
    if x86_host {
        for vars in [
            &["ARCH=x86"][..],
            &["ARCH=x86_64"],
            &["CROSS_COMPILE=x86_64-linux-gnu-"],
        ] {
            let d = decide(vars).unwrap();
            assert_eq!(get(&d, "supported"), "1", "{vars:?}");
            assert_eq!(get(&d, "skip"), "", "{vars:?}");
        }
    }
    for vars in [
        &["ARCH=arm64"][..],
        &["ARCH=i386"],
        &["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"],
        &["CROSS_COMPILE=aarch64-linux-gnu-"],
        &["ARCH=x86", "CROSS_COMPILE=i686-linux-gnu-"],
    ] {
        let d = decide(vars).unwrap();
        assert_eq!(get(&d, "supported"), "", "{vars:?}");
        assert!(get(&d, "skip").contains("x86_64 only"), "{vars:?}");
    }
}

#[test]
fn the_stub_reports_a_ktap_skip() {
    let dir = std::env::temp_dir().join(format!("vfio-revoke-stub-{}", std::process::id()));
    let built = Command::new("make")
        .args([
            "-s",
            "--no-print-directory",
            "-C",
            env!("CARGO_MANIFEST_DIR"),
        ])
        .arg(format!("OUTPUT={}", dir.display()))
        .arg("ARCH=arm64")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .output();
    let Ok(built) = built else {
        eprintln!("make not installed: skipped");
        return;
    };
    assert!(built.status.success(), "{built:?}");
    let stub = dir.join("vfio_fork_revoke");
    for nested in [false, true] {
        let mut cmd = Command::new(&stub);
        if nested {
            cmd.env("KSFT_TAP_LEVEL", "1");
        } else {
            cmd.env_remove("KSFT_TAP_LEVEL");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(4));
        let text = String::from_utf8(out.stdout).unwrap();
        let want = "1..0 # SKIP vfio_fork_revoke runs on x86_64 only (its SIGBUS probe is \
                    x86_64 assembly), not built for ARCH=arm64\n";
        if nested {
            assert_eq!(text, want);
        } else {
            assert_eq!(text, format!("TAP version 13\n{want}"));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
