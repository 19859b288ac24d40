//! Link libfasa. Order: $FASA_LIB_DIR when set (the repository's check
//! uses it so it always tests the tree it was built from), else
//! `pkg-config --libs fasa` when that works, else ../../build relative to
//! this crate. An rpath is added for directories outside the system paths
//! so that `cargo test` binaries find libfasa.so at run time.
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn link_dir(dir: &str) {
    println!("cargo:rustc-link-search=native={}", dir);
    println!("cargo:rustc-link-lib=dylib=fasa");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
}

fn pkg_config() -> bool {
    let out = match Command::new("pkg-config").args(["--libs", "fasa"]).output() {
        Ok(o) if o.status.success() => o,
        _ => return false,
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut linked = false;
    for flag in text.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={}", dir);
            if !dir.starts_with("/usr/lib") && dir != "/lib" {
                println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
            }
        } else if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={}", lib);
            linked |= lib == "fasa";
        }
    }
    linked
}

fn main() {
    println!("cargo:rerun-if-env-changed=FASA_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(dir) = env::var("FASA_LIB_DIR") {
        link_dir(&dir);
        return;
    }
    if pkg_config() {
        return;
    }
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let dir = crate_dir.join("../../build");
    let dir = dir.canonicalize().unwrap_or(dir);
    link_dir(&dir.to_string_lossy());
}
