//! Link libfasa.
//!
//! Where: $FASA_LIB_DIR when set (the repository's check uses it so it
//! always tests the tree it was built from), else `pkg-config fasa` (an
//! installed libfasa: `make install`), else ../../build relative to this
//! crate (a source checkout after `make lib`).
//!
//! How: FASA_STATIC=1 links the static libfasa.a plus what it needs (libm,
//! and libgomp unless FASA_OPENMP=0 says the library was built with
//! OPENMP=0); FASA_STATIC=0 the shared library. Unset: static from a build
//! directory that has libfasa.a (a crate that depends on this one gets no
//! rpath from a dependency's build script, so a shared libfasa.so in a build
//! tree would not be found at run time), shared for an installed library
//! (the system loader finds it). Shared links from a directory outside the
//! system paths get an rpath for this crate's own tests and examples.
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn static_choice() -> Option<bool> {
    env::var("FASA_STATIC").ok().map(|v| v == "1")
}

fn is_static() -> bool {
    static_choice().unwrap_or(false)
}

fn static_deps() {
    println!("cargo:rustc-link-lib=dylib=m");
    if env::var("FASA_OPENMP").map(|v| v != "0").unwrap_or(true) {
        println!("cargo:rustc-link-lib=dylib=gomp");
    }
}

fn link_dir(dir: &str) {
    println!("cargo:rustc-link-search=native={}", dir);
    let archive = PathBuf::from(dir).join("libfasa.a");
    let has_archive = archive.exists();
    // A rebuilt library must relink the binaries (static) or at least
    // re-decide the link mode.
    println!("cargo:rerun-if-changed={}", archive.display());
    println!("cargo:rerun-if-changed={}", PathBuf::from(dir).join("libfasa.so").display());
    if static_choice().unwrap_or(has_archive) {
        println!("cargo:rustc-link-lib=static=fasa");
        static_deps();
    } else {
        println!("cargo:rustc-link-lib=dylib=fasa");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
    }
}

fn pkg_config() -> bool {
    let mut args = vec!["--libs", "fasa"];
    if is_static() {
        args.insert(0, "--static");
    }
    let out = match Command::new("pkg-config").args(&args).output() {
        Ok(o) if o.status.success() => o,
        _ => return false,
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut linked = false;
    for flag in text.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={}", dir);
            if !is_static() && !dir.starts_with("/usr/lib") && dir != "/lib" {
                println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
            }
        } else if let Some(lib) = flag.strip_prefix("-l") {
            let kind = if is_static() && lib == "fasa" { "static" } else { "dylib" };
            println!("cargo:rustc-link-lib={}={}", kind, lib);
            linked |= lib == "fasa";
        } else if flag == "-fopenmp" {
            println!("cargo:rustc-link-lib=dylib=gomp");
        }
    }
    linked
}

fn main() {
    for var in ["FASA_LIB_DIR", "FASA_STATIC", "FASA_OPENMP", "PKG_CONFIG_PATH"] {
        println!("cargo:rerun-if-env-changed={}", var);
    }
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
