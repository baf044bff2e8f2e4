use std::path::Path;
use std::process::Command;

fn main() {
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !linux_gnu {
        return;
    }
    // Link the binary at a fixed address (not position-independent): the dynamic loader then
    // has no relocations to apply at every start. A PIE of this size carries ~18,000 of them,
    // which cost each agent run about 150 page faults before main. The objects stay PIC, so
    // this changes nothing but the final link; only this package's binaries get it.
    println!("cargo:rustc-link-arg-bins=-no-pie");

    // The unwinder linked in (GCC's libgcc_eh.a, the one `gcc -static` uses) instead of
    // libgcc_s.so: one shared object fewer for the dynamic loader to find, map and bind at
    // every agent start, about 0.1 ms of CPU per action (ocf-tests/BENCHMARKS.md). glibc and
    // NSS stay dynamic. Whole-archive, because this package's own libraries come before the
    // standard library's on the link line: the unwinder's symbols are then defined before
    // the standard library asks for libgcc_s, and `--as-needed` drops it. Panics still unwind
    // (the runner's catch_unwind is tested with this build).
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let found = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match found.as_deref().map(Path::new).filter(|p| p.is_absolute() && p.is_file()) {
        Some(archive) => {
            let dir = archive.parent().expect("an absolute file path has a parent");
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static:+whole-archive=gcc_eh");
        }
        None => println!("cargo:warning={cc} has no libgcc_eh.a: the agents link libgcc_s.so instead"),
    }
}
