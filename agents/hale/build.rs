use std::path::{Path, PathBuf};
use std::process::Command;

/// Agent programs linked statically: those that never ask glibc's NSS for a name (no user,
/// group or host lookup). A static glibc program that does ask loads the NSS modules listed
/// in nsswitch.conf (libnss_systemd on Debian) with a second copy of libc, and crashes: so
/// an agent that needs names stays dynamic, and `agents/hale/tests/static_agents.rs` fails
/// when one of these programs contains an NSS or dlopen entry point.
const STATIC_BINS: &[&str] = &["hale-vip"];

fn main() {
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !linux_gnu {
        return;
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

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
    // (the runner's catch_unwind is tested with this build). The archive is searched in a
    // directory of its own: GCC's holds libgcc_s.so too, which a static link must not see.
    let Some(unwinder) = archive(&cc, "libgcc_eh.a") else {
        println!("cargo:warning={cc} has no libgcc_eh.a: the agents link libgcc_s.so instead");
        return;
    };
    let unwind_dir = out.join("unwind");
    std::fs::create_dir_all(&unwind_dir).expect("creating OUT_DIR/unwind");
    std::fs::copy(&unwinder, unwind_dir.join("libgcc_eh.a")).expect("copying libgcc_eh.a");
    println!("cargo:rustc-link-search=native={}", unwind_dir.display());
    println!("cargo:rustc-link-lib=static:+whole-archive=gcc_eh");

    // The static programs. rustc links the standard library with `-Bdynamic -lc -lm ...`
    // unless the whole build has `+crt-static`, which cargo cannot set for one binary. So
    // these binaries get `-static` (the C driver then picks the static start files and no
    // program interpreter) and a library directory where each of those names is a linker
    // script naming glibc's archive: ld finds `libc.so` there before the system's and links
    // libc.a. No loader, no libc.so to map and bind: a vip monitor costs about what
    // /bin/true costs (ocf-tests/BENCHMARKS.md).
    let libs = ["c", "m", "rt", "pthread", "dl", "util"];
    let found: Option<Vec<PathBuf>> = libs.iter().map(|l| archive(&cc, &format!("lib{l}.a"))).collect();
    let Some(found) = found else {
        println!("cargo:warning={cc} has no static glibc (libc6-dev): every agent links libc.so");
        return;
    };
    let static_dir = out.join("static-glibc");
    std::fs::create_dir_all(&static_dir).expect("creating OUT_DIR/static-glibc");
    for (l, a) in libs.iter().zip(&found) {
        let script = format!("/* {} for a static link */\nINPUT({})\n", a.display(), a.display());
        std::fs::write(static_dir.join(format!("lib{l}.so")), script).expect("writing a linker script");
    }
    // Asked for by the standard library; the unwinder is already linked whole.
    std::fs::write(static_dir.join("libgcc_s.so"), "/* libgcc_eh.a is linked whole */\nINPUT()\n")
        .expect("writing a linker script");
    for bin in STATIC_BINS {
        println!("cargo:rustc-link-arg-bin={bin}=-static");
        println!("cargo:rustc-link-arg-bin={bin}=-L{}", static_dir.display());
    }
}

/// The absolute path of `name` in the C compiler's library search path, if it has one.
fn archive(cc: &str, name: &str) -> Option<PathBuf> {
    let o = Command::new(cc).arg(format!("-print-file-name={name}")).output().ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    (o.status.success() && p.is_absolute() && Path::new(&p).is_file()).then_some(p)
}
